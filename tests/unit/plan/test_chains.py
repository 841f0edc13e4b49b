"""Restore points and chain checks: pure, over hand-built archives."""

from __future__ import annotations

import dataclasses

import pytest

from tests.support.archive_files import member, new_file, seed_file
from zfs_offsite.archive.model import ArchiveFile
from zfs_offsite.archive.names import Compression
from zfs_offsite.errors import ChainError
from zfs_offsite.plan.backup import Action, FullCadence, plan_backup
from zfs_offsite.plan.chains import choose_restore_point, restore_points
from zfs_offsite.zfs.model import Bookmark
from zfs_offsite.zfs.protect import stale_marks


def at(file: ArchiveFile, when: float) -> ArchiveFile:
    return dataclasses.replace(file, mtime=when)


def corrupt(file: ArchiveFile) -> ArchiveFile:
    return dataclasses.replace(file, corrupt="sha256 mismatch")


def chain_files() -> tuple[list[ArchiveFile], tuple]:
    m = member("s1", "s2", "s3", "s4")
    s = m.snapshots
    files = [
        at(new_file(s[0]), 1),
        at(new_file(s[1], s[0]), 2),
        at(new_file(s[2], s[1]), 3),
        at(new_file(s[3], s[2]), 4),
    ]
    return files, s


def test_newest_point_is_default_and_chain_is_in_order() -> None:
    files, _ = chain_files()
    point = choose_restore_point(files, None)
    assert point.snapshot == "s4"
    assert [f.filename for f in point.chain] == [f.filename for f in files]


def test_intermediate_snapshot_restores_with_a_prefix_of_the_chain() -> None:
    files, _ = chain_files()
    point = choose_restore_point(files, "s2")
    assert [f.name.snapshot for f in point.chain] == ["s1", "s2"]


def test_missing_middle_link_is_named() -> None:
    files, _ = chain_files()
    del files[1]
    with pytest.raises(ChainError, match=r"needs a file whose target is s2 \(e\.g\. elabfs-a@s2"):
        choose_restore_point(files, "s4")
    assert [p.snapshot for p in restore_points(files)] == ["s1"]


def test_corrupt_link_is_named_and_never_used() -> None:
    files, _ = chain_files()
    files[2] = corrupt(files[2])
    with pytest.raises(ChainError, match=r"elabfs-a@s2.to.elabfs-a@s3.zst is marked corrupt"):
        choose_restore_point(files, "s4")


def test_guid_mismatch_is_named() -> None:
    files, s = chain_files()
    reused = dataclasses.replace(s[1], guid=999)
    files[1] = at(new_file(reused, s[0]), 2)
    with pytest.raises(ChainError, match="GUID"):
        choose_restore_point(files, "s4")


def test_unknown_snapshot_lists_what_exists() -> None:
    files, _ = chain_files()
    with pytest.raises(ChainError, match=r"no backup file has snapshot nope; .*s1, s2, s3, s4"):
        choose_restore_point(files, "nope")


def test_seed_era_start_then_new_files() -> None:
    m = member("auto-20190806.0200-1w", "auto-20190807.0200-1w")
    s = m.snapshots
    files = [
        at(seed_file("elabfs-a@auto-20190806.0200-1w.gz"), 1),
        at(new_file(s[1], s[0]), 2),
    ]
    point = choose_restore_point(files, None)
    assert [f.name.compression for f in point.chain] == [Compression.GZIP, Compression.ZSTD]


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


def test_full_cadence_starts_a_new_chain() -> None:
    m = member("s1", "s2", "s3", "s4")
    s = m.snapshots
    files = [at(new_file(s[0]), 1000.0), at(new_file(s[1], s[0]), 2000.0)]
    files.append(at(new_file(s[2], s[1]), 3000.0))
    by_count = plan_backup(
        m, files, Compression.ZSTD, cadence=FullCadence(after_incrementals=2), now=4000.0
    )
    assert by_count.action is Action.FULL and "2 incrementals" in by_count.reason
    by_age = plan_backup(m, files, Compression.ZSTD, cadence=FullCadence(after_days=1), now=1e6)
    assert by_age.action is Action.FULL and "days old" in by_age.reason
    young = plan_backup(m, files, Compression.ZSTD, cadence=FullCadence(after_days=1), now=4000.0)
    assert young.action is Action.INCREMENTAL


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


def test_stale_marks_are_other_held_snapshots_and_our_bookmarks() -> None:
    m = member("s1", "s2", "s3")
    s1, s2, s3 = m.snapshots
    held = dataclasses.replace(s1, userrefs=1)
    ours = Bookmark(s1.dataset, "zfs-offsite-ab_s1", s1.guid, s1.createtxg, s1.creation)
    theirs = Bookmark(s1.dataset, "other_s1", s1.guid, s1.createtxg, s1.creation)
    m = dataclasses.replace(m, snapshots=(held, s2, s3), bookmarks=(ours, theirs))
    assert stale_marks(m, "zfs-offsite-ab", s3) == (
        "tank/elabfs-a@s1",
        "tank/elabfs-a#zfs-offsite-ab_s1",
    )
