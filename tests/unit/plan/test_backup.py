from __future__ import annotations

import dataclasses

from tests.support.archive_files import DS, corrupt, member, new_file, seed_file
from zfs_offsite.archive.names import BackupName, Compression
from zfs_offsite.plan.backup import Action, BackupPlan, plan_backup, prefer_unfinished
from zfs_offsite.plan.chains import restore_chains
from zfs_offsite.zfs.members import Member
from zfs_offsite.zfs.model import Bookmark, Snapshot


def test_empty_archive_gives_full_of_newest_by_createtxg() -> None:
    plan = plan_backup(member("z", "y"), [], Compression.ZSTD)
    assert plan.action is Action.FULL
    assert plan.filename == "elabfs-a@y.zst"


def test_incremental_from_newest_archived() -> None:
    m = member("s1", "s2", "s3")
    files = [new_file(m.snapshots[0])]
    plan = plan_backup(m, files, Compression.ZSTD)
    assert plan.action is Action.INCREMENTAL
    assert plan.base == m.snapshots[0] and plan.snapshot == m.snapshots[2]
    assert plan.filename == "elabfs-a@s1.to.elabfs-a@s3.zst"


def test_up_to_date_and_no_snapshots() -> None:
    m = member("s1")
    assert plan_backup(m, [new_file(m.snapshots[0])], Compression.ZSTD).action is Action.UP_TO_DATE
    assert plan_backup(member(), [], Compression.ZSTD).action is Action.NO_SNAPSHOTS


def test_seed_files_match_by_name_and_extend_with_incremental() -> None:
    m = member("s1", "s2", "s3")
    files = [seed_file("elabfs-a@s1.gz"), seed_file("elabfs-a@s1.to.elabfs-a@s2.gz")]
    plan = plan_backup(m, files, Compression.GZIP)
    assert plan.action is Action.INCREMENTAL
    assert plan.filename == "elabfs-a@s2.to.elabfs-a@s3.gz"


def test_reused_snapshot_name_with_other_guid_is_not_a_base() -> None:
    m = member("s1", "s2")
    old = Snapshot(DS, "s1", 999, 1, 0)  # destroyed and re-created since
    plan = plan_backup(m, [new_file(old)], Compression.ZSTD)
    assert plan.action is Action.FULL


def test_incremental_without_its_base_is_not_restorable() -> None:
    m = member("s1", "s2", "s3")
    orphan = seed_file("elabfs-a@s1.to.elabfs-a@s2.gz")  # full of s1 missing
    assert restore_chains([orphan]) == {}
    plan = plan_backup(m, [orphan], Compression.ZSTD)
    assert plan.action is Action.FULL


def test_planned_name_that_exists_is_a_conflict_not_an_overwrite() -> None:
    m = member("s1", "s2")
    # A full of s2 exists but records another GUID (name reused): never overwrite it.
    stale = new_file(Snapshot(DS, "s2", 555, 1, 0))
    plan = plan_backup(m, [stale], Compression.ZSTD)
    assert plan.action is Action.CONFLICT


def test_force_full() -> None:
    m = member("s1", "s2")
    plan = plan_backup(m, [new_file(m.snapshots[0])], Compression.ZSTD, force_full=True)
    assert plan.action is Action.FULL and plan.base is None


def test_planner_never_builds_on_a_corrupt_file() -> None:
    m = member("s1", "s2", "s3", "s4", "s5")
    s = m.snapshots
    files = [new_file(s[0]), new_file(s[1], s[0]), corrupt(new_file(s[3], s[1]))]
    plan = plan_backup(m, files, Compression.ZSTD)
    assert plan.action is Action.INCREMENTAL
    assert plan.base == s[1]  # the newest sound base, not s4 from the corrupt file
    files[0] = corrupt(files[0])
    plan = plan_backup(m, files, Compression.ZSTD)
    assert plan.action is Action.FULL


def test_bookmark_of_a_destroyed_archived_snapshot_is_the_base() -> None:
    m = member("s1", "s2", "s3")
    s1, s2, s3 = m.snapshots
    files = [new_file(s1), new_file(s2, s1)]
    mark = Bookmark(s2.dataset, "zfs-offsite-ab_s2", s2.guid, s2.createtxg, s2.creation)
    pruned = dataclasses.replace(m, snapshots=(s1, s3), bookmarks=(mark,))  # NAS destroyed s2
    plan = plan_backup(pruned, files, Compression.ZSTD)
    assert plan.action is Action.INCREMENTAL
    assert plan.base is not None and plan.base.name == "s2" and plan.base.guid == s2.guid
    assert plan.send_from == "tank/elabfs-a#zfs-offsite-ab_s2"
    assert plan.filename == "elabfs-a@s2.to.elabfs-a@s3.zst"
    with_snapshot = plan_backup(dataclasses.replace(m, bookmarks=(mark,)), files, Compression.ZSTD)
    assert with_snapshot.send_from == "tank/elabfs-a@s2"  # the snapshot (-I) beats its bookmark


def test_a_cut_upload_of_an_older_snapshot_is_finished_first() -> None:
    """The zfs_uploader#77 loop: tonight's full of s2 would restart from byte 0 every night."""
    m = member("s1", "s2")
    tonight = plan_backup(m, [], Compression.ZSTD)
    assert (tonight.action, tonight.snapshot and tonight.snapshot.name) == (Action.FULL, "s2")
    cut = BackupName("elabfs-a", "s1", Compression.ZSTD)

    def replan(then: Member) -> BackupPlan:
        return plan_backup(then, [], Compression.ZSTD)

    resumed = prefer_unfinished(tonight, m, [cut], replan)
    assert resumed.name == cut and resumed.action is Action.FULL
    assert resumed.reason.endswith(
        "resuming its upload that was cut (s2, the newest, follows in the next run)"
    )
    # Only a cut upload from the same base, of a snapshot that still exists, counts.
    other_base = BackupName("elabfs-a", "s1", Compression.ZSTD, base="s0")
    gone = BackupName("elabfs-a", "s0", Compression.ZSTD)
    assert prefer_unfinished(tonight, m, [other_base, gone], replan) == tonight


def test_a_cut_incremental_is_finished_before_the_newer_one() -> None:
    m = member("s1", "s2", "s3")
    files = [new_file(m.snapshots[0])]
    tonight = plan_backup(m, files, Compression.ZSTD)
    assert (tonight.action, tonight.base) == (Action.INCREMENTAL, m.snapshots[0])
    cut = BackupName("elabfs-a", "s2", Compression.ZSTD, base="s1")
    resumed = prefer_unfinished(
        tonight, m, [cut], lambda then: plan_backup(then, files, Compression.ZSTD)
    )
    assert resumed.name == cut and resumed.snapshot == m.snapshots[1]
