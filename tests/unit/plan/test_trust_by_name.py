"""Trust by name only where the seed wrote (plan/chains.trust_by_name) and the planner's words.

A file without sidecars is a link only in a member directory this tool has not
written to yet, or when it is older than this tool's first file there.
"""

from __future__ import annotations

import dataclasses

from tests.support.archive_files import DS, at, member, new_file, seed_file
from zfs_offsite.archive.names import Compression
from zfs_offsite.plan.backup import Action, plan_backup
from zfs_offsite.plan.chains import (
    choose_restore_point,
    missing_link,
    restore_chains,
    restore_points,
    trust_by_name,
)
from zfs_offsite.zfs.model import Snapshot

JUNK = "elabfs-a@s1.to.elabfs-a@s2.gz"  # what an old cron job left, cut short


def tool_chain_and_junk() -> tuple[list, tuple[Snapshot, ...]]:  # type: ignore[type-arg]
    """The tool's full of s1 (stored at t=100), then a sidecar-less s1 -> s2 (t=200)."""
    m = member("s1", "s2", "s3")
    s = m.snapshots
    return [at(new_file(s[0]), 100.0), at(seed_file(JUNK), 200.0)], s


def test_a_seed_only_directory_is_trusted_by_name() -> None:
    files = [at(seed_file("elabfs-a@s1.gz"), 50.0), at(seed_file(JUNK), 60.0)]
    assert trust_by_name(files) == files
    assert [p.snapshot for p in restore_points(files)] == ["s1", "s2"]


def test_seed_files_older_than_the_tools_first_file_stay_links() -> None:
    s = member("s1", "s2", "s3").snapshots
    seed = [at(seed_file("elabfs-a@s1.gz"), 50.0), at(seed_file(JUNK), 60.0)]
    ours = at(new_file(s[2], s[1]), 100.0)
    chains = restore_chains([*seed, ours])
    assert [f.filename for f in chains[ours.filename]] == [f.filename for f in seed] + [
        ours.filename
    ]


def test_a_sidecar_less_file_after_the_tools_first_file_is_no_link() -> None:
    files, _ = tool_chain_and_junk()
    assert JUNK not in restore_chains(files)
    assert [p.snapshot for p in restore_points(files)] == ["s1"]
    (junk,) = [f for f in trust_by_name(files) if f.filename == JUNK]
    assert not junk.sound and junk.untrusted_name
    why = missing_link(files[1], files)
    assert why.startswith(f"{JUNK} cannot be a link: {JUNK} has no .sha256 or .json")
    assert "written after zfs-offsite's first file in this directory (elabfs-a@s1.zst)" in why
    assert "move the file out of the member directory" in why


def test_a_backdated_file_built_on_a_snapshot_the_tool_stored_is_no_link() -> None:
    """`touch -d`, `cp -p` or `rsync -t` can set a date back; a base the tool stored stays."""
    m = member("s1", "s2", "s3")
    files = [at(new_file(m.snapshots[0]), 100.0), at(seed_file(JUNK), 10.0)]
    (junk,) = [f for f in trust_by_name(files) if f.filename == JUNK]
    assert junk.untrusted_name and not junk.sound
    assert "builds on elabfs-a@s1.zst, which zfs-offsite stored" in (junk.sidecar_problem or "")
    assert [p.snapshot for p in restore_points(files)] == ["s1"]
    plan = plan_backup(m, files, Compression.ZSTD)
    assert plan.action is Action.INCREMENTAL
    assert plan.base is not None and plan.base.name == "s1"


def test_the_rule_is_applied_once_whatever_the_caller() -> None:
    files, _ = tool_chain_and_junk()
    once = trust_by_name(files)
    assert trust_by_name(once) == once
    # a subset without the tool's first file keeps the verdict the whole directory gave
    assert not trust_by_name(once[1:])[0].sound


def test_a_file_written_while_the_tools_first_upload_ran_is_no_link() -> None:
    """The tool's upload began (sidecar `started`) before the junk, though it finished after."""
    s = member("s1", "s2").snapshots
    first = at(new_file(s[0]), 300.0)
    assert first.sidecar is not None
    began = dataclasses.replace(first.sidecar, started="1970-01-01T00:01:40+00:00")  # t=100
    first = dataclasses.replace(first, sidecar=began)
    assert JUNK not in restore_chains([first, at(seed_file(JUNK), 200.0)])


def test_restore_by_default_takes_the_newest_real_point_not_the_junk() -> None:
    files, _ = tool_chain_and_junk()
    assert choose_restore_point(files, None).snapshot == "s1"


def test_the_next_night_is_not_built_on_the_junk_and_the_plan_names_it() -> None:
    files, s = tool_chain_and_junk()
    plan = plan_backup(member("s1", "s2", "s3"), files, Compression.ZSTD)
    assert plan.action is Action.INCREMENTAL
    assert plan.base == s[0] and plan.snapshot == s[2]
    assert plan.filename == "elabfs-a@s1.to.elabfs-a@s3.zst"
    assert f"{JUNK} has no .sha256 or .json" in plan.reason
    assert "stop whatever wrote it (an old cron job?)" in plan.reason


def test_the_junks_snapshot_is_not_up_to_date() -> None:
    files, s = tool_chain_and_junk()
    plan = plan_backup(member("s1", "s2"), files, Compression.ZSTD)
    assert plan.action is Action.INCREMENTAL
    assert (plan.base, plan.snapshot) == (s[0], s[1])


def test_a_junk_file_under_the_planned_name_is_a_conflict_whose_advice_is_safe() -> None:
    """Same name as tonight's file (gzip, like the seed): moving only it loses nothing."""
    files, _ = tool_chain_and_junk()
    plan = plan_backup(member("s1", "s2"), files, Compression.GZIP)
    assert plan.action is Action.CONFLICT
    assert f"move only {JUNK} out of the member directory" in plan.reason
    assert "no restore point uses it" in plan.reason
    assert plan.reason.count(f"{JUNK} has no .sha256 or .json") == 1  # said once


def test_a_lost_base_is_described_as_lost_on_the_nas() -> None:
    old = member("s1", "s2").snapshots
    files = [at(new_file(old[0]), 100.0), at(new_file(old[1], old[0]), 200.0)]
    now = member("s3")  # the NAS destroyed s1 and s2, and no bookmark is left
    plan = plan_backup(now, files, Compression.ZSTD)
    assert plan.action is Action.FULL
    assert "no snapshot of it is in the archive" not in plan.reason
    assert plan.reason.startswith(
        f"the archive's newest snapshot s2 no longer exists on the NAS ({DS}@s2 was destroyed "
        "on the NAS"
    )
    assert "a full of s3 starts a new chain; the archive's restore points stay" in plan.reason
    assert "leave protect_base on" in plan.reason


def test_a_lost_base_whose_name_was_reused_says_so() -> None:
    old = member("s1").snapshots
    files = [new_file(old[0])]
    now = (Snapshot(DS, "s1", 999, 5, 0), Snapshot(DS, "s2", 1000, 6, 0))
    plan = plan_backup(dataclasses.replace(member(), snapshots=now), files, Compression.ZSTD)
    assert plan.action is Action.FULL
    assert f"({DS}@s1 on the NAS is another snapshot (GUID 999, not 100)" in plan.reason


def test_an_empty_archive_still_says_nothing_is_archived() -> None:
    plan = plan_backup(member("s1"), [], Compression.ZSTD)
    assert plan.reason == "no snapshot of it is in the archive"


def test_conflict_on_a_reused_name_keeps_every_restore_point() -> None:
    """s2 was destroyed and re-created on the NAS: the archived s1 -> s2 is a restore point
    (and s2 -> s3 builds on it), so the advice must not be to move it."""
    s1 = Snapshot(DS, "s1", 100, 10, 0)
    old_s2, old_s3 = Snapshot(DS, "s2", 555, 11, 0), Snapshot(DS, "s3", 556, 12, 0)
    files = [new_file(s1), new_file(old_s2, s1), new_file(old_s3, old_s2)]
    new_s2 = Snapshot(DS, "s2", 777, 20, 0)
    plan = plan_backup(
        dataclasses.replace(member(), snapshots=(s1, new_s2)), files, Compression.ZSTD
    )
    assert plan.action is Action.CONFLICT
    assert "move it aside" not in plan.reason
    assert "it restores an earlier s2 with GUID 555, a snapshot name reused on the NAS" in (
        plan.reason
    )
    assert "do not move or delete it: that would lose its restore point and 1 later one(s)" in (
        plan.reason
    )
    assert f"zfs rename {DS}@s2 {DS}@s2-new" in plan.reason
    assert "or wait for the next snapshot: its file name is free" in plan.reason


def test_prune_leaves_the_junk_alone_and_says_why() -> None:
    """Prune agrees with the planner: the junk is no point's link, so never deleted."""
    from datetime import UTC, datetime

    from zfs_offsite.plan.retention import plan_prune
    from zfs_offsite.report.run_report import prune_file_rows
    from zfs_offsite.values.policy import parse_policy

    files, _ = tool_chain_and_junk()
    plan = plan_prune("a", trust_by_name(files), [], parse_policy("all 7d"), datetime.now(UTC))
    assert [f.filename for f in plan.untouched] == [JUNK] and not plan.delete
    (row,) = [r for r in prune_file_rows(plan, dry_run=True) if r["file"] == JUNK]
    assert str(row["decision"]).startswith(f"left alone: {JUNK} has no .sha256 or .json")
