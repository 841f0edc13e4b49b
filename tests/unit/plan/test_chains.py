"""Restore points and chain checks: pure, over hand-built archives."""

from __future__ import annotations

import dataclasses

import pytest

from tests.support.archive_files import at, corrupt, member, new_file, seed_file, snaps
from zfs_offsite.archive.model import ArchiveFile
from zfs_offsite.archive.names import Compression
from zfs_offsite.errors import ChainError
from zfs_offsite.plan.chains import choose_restore_point, restore_chains, restore_points


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
    with pytest.raises(ChainError, match=r"no backup file has snapshot nope .*: s1, s2, s3, s4$"):
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


def test_shortest_chain_is_chosen() -> None:
    s = snaps("s1", "s2", "s3")
    files = [
        new_file(s[0]),
        new_file(s[1], s[0]),
        new_file(s[2], s[1]),
        new_file(s[2], s[0]),
    ]
    chains = restore_chains(files)
    assert [f.filename for f in chains["elabfs-a@s1.to.elabfs-a@s3.zst"]] == [
        "elabfs-a@s1.zst",
        "elabfs-a@s1.to.elabfs-a@s3.zst",
    ]
    assert len(chains["elabfs-a@s2.to.elabfs-a@s3.zst"]) == 3
