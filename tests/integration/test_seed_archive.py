"""A seed-layout archive (gzip, seed names, no sidecars) is extended, not restarted."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.services import Pool, ensure_test_user
from tests.support.zfsdata import (
    create_member,
    guid,
    gzip_send,
    receive_with_standard_tools,
    snapshot,
    tree_digest,
    write_member_data,
    zfs_get,
)
from zfs_offsite.archive.identity import ArchiveRootError
from zfs_offsite.jobs.archive_root import adopt
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.jobs.seed_base import SeedBaseError
from zfs_offsite.plan.backup import Action
from zfs_offsite.settings import Settings
from zfs_offsite.stream.format import RECORD_SIZE
from zfs_offsite.zfs.record import record_property

pytestmark = pytest.mark.integration


S1, S2, S3 = "auto-20190806.0200-1w", "auto-20190807.0200-1w", "auto-20190808.0200-1w"
S4 = "auto-20190809.0200-1w"


def member_with_snapshots(pool: Pool, *snapshots: str) -> tuple[str, Path]:
    """Member dora with new data before each snapshot: (its dataset, its mountpoint)."""
    dataset = create_member(pool.name, "dora")
    mount = pool.mountpoint / "elabfs-dora"
    for seed, snap in enumerate(snapshots):
        write_member_data(mount, seed, 1)
        snapshot(dataset, snap)
    return dataset, mount


def hand_to_login(member_dir: Path) -> None:
    """The member directory and its files as the backup server's login owns them."""
    user = ensure_test_user()
    for path in (member_dir, *member_dir.iterdir()):
        os.chown(path, user.pw_uid, user.pw_gid)


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_seed_archive_gets_an_incremental(
    pool_factory: Callable[[], Pool],
    sftp_dir: Path,
    settings_for: Callable[..., Settings],
    compression: str,
) -> None:
    pool = pool_factory()
    dataset, mount = member_with_snapshots(pool, S1, S2, S3)

    # What the seed script left: a full of S1 and an -I incremental S1 -> S2, gzip, no sidecars.
    member_dir = sftp_dir / "dora"
    member_dir.mkdir()
    seed_full = member_dir / f"elabfs-dora@{S1}.gz"
    seed_inc = member_dir / f"elabfs-dora@{S1}.to.elabfs-dora@{S2}.gz"
    gzip_send(["zfs", "send", f"{dataset}@{S1}"], seed_full)
    gzip_send(["zfs", "send", "-I", f"{dataset}@{S1}", f"{dataset}@{S2}"], seed_inc)
    stray = member_dir / "README.txt"
    stray.write_text("notes kept by the admin\n")
    hand_to_login(member_dir)

    settings = settings_for(pool, sftp_dir, compression=compression)
    (member,) = discover_members(settings)
    with pytest.raises(ArchiveRootError, match="run `zfs-offsite adopt` once"):
        backup_member(settings, member)  # an unadopted seed archive: nothing is written
    assert sorted(member_dir.iterdir()) == sorted([seed_full, seed_inc, stray])
    adopt(settings)
    result = backup_member(settings, member)

    assert result.action is Action.INCREMENTAL
    assert result.base == S2 and result.snapshot == S3
    suffix = ".gz" if compression == "gzip" else ".zst"
    new_file = member_dir / f"elabfs-dora@{S2}.to.elabfs-dora@{S3}{suffix}"
    assert new_file.is_file()
    assert stray.read_text() == "notes kept by the admin\n"
    assert seed_full.is_file() and seed_inc.is_file()

    restore = pool_factory()
    target = f"{restore.name}/elabfs-dora"
    receive_with_standard_tools([seed_full, seed_inc, new_file], target)
    for snap in (S1, S2, S3):
        assert guid(f"{target}@{snap}") == guid(f"{dataset}@{snap}")
    assert tree_digest(restore.mountpoint / "elabfs-dora") == tree_digest(mount)


def test_a_seed_base_cut_short_is_marked_not_built_on(
    pool_factory: Callable[[], Pool],
    sftp_dir: Path,
    settings_for: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The seed's run cut mid-write left its newest file under its final name: the first
    night reads the seed files it would build on, marks the cut one, sends nothing; the
    next night builds on the sound full, and that chain restores."""
    pool = pool_factory()
    dataset, mount = member_with_snapshots(pool, S1, S2, S3)
    member_dir = sftp_dir / "dora"
    member_dir.mkdir()
    seed_full = member_dir / f"elabfs-dora@{S1}.gz"
    seed_inc = member_dir / f"elabfs-dora@{S1}.to.elabfs-dora@{S2}.gz"
    gzip_send(["zfs", "send", f"{dataset}@{S1}"], seed_full)
    gzip_send(["zfs", "send", "-I", f"{dataset}@{S1}", f"{dataset}@{S2}"], seed_inc)
    with seed_inc.open("r+b") as cut:
        cut.truncate(seed_inc.stat().st_size // 2)
    hand_to_login(member_dir)
    settings = settings_for(pool, sftp_dir, compression="gzip")
    (member,) = discover_members(settings)
    adopt(settings)

    with caplog.at_level("INFO"), pytest.raises(SeedBaseError) as failed:
        backup_member(settings, member)
    assert f"dora/{seed_inc.name}" in str(failed.value)
    assert "marked corrupt, nothing sent" in str(failed.value)
    assert "reading 2 seed-era file(s)" in caplog.text
    mark = member_dir / f"{seed_inc.name}.corrupt"
    assert mark.is_file()
    assert sorted(p.name for p in member_dir.iterdir()) == sorted(
        [seed_full.name, seed_inc.name, mark.name]
    )
    assert seed_inc.stat().st_size > 0  # the cut file itself is kept as it was

    caplog.clear()
    with caplog.at_level("INFO"):
        result = backup_member(settings, member)
    assert (result.action, result.base, result.snapshot) == (Action.INCREMENTAL, S1, S3)
    assert "reading 1 seed-era file(s)" in caplog.text  # the full, not proven yet
    new_file = member_dir / f"elabfs-dora@{S1}.to.elabfs-dora@{S3}.gz"
    restore = pool_factory()
    target = f"{restore.name}/elabfs-dora"
    receive_with_standard_tools([seed_full, new_file], target)
    for snap in (S1, S3):
        assert guid(f"{target}@{snap}") == guid(f"{dataset}@{snap}")
    assert tree_digest(restore.mountpoint / "elabfs-dora") == tree_digest(mount)


def test_adopt_records_the_archive_so_an_unmounted_disk_is_refused_before_the_first_night(
    pool_factory: Callable[[], Pool],
    sftp_dir: Path,
    settings_for: Callable[..., Settings],
) -> None:
    """Between `adopt` and the first night the seed archive's disk is not mounted (its
    mount point is an empty directory): the backup refuses instead of starting a new
    archive there, and once the disk is back the night extends the seed chain."""
    pool = pool_factory()
    dataset, _ = member_with_snapshots(pool, S1, S2)
    member_dir = sftp_dir / "dora"
    member_dir.mkdir()
    gzip_send(["zfs", "send", f"{dataset}@{S1}"], member_dir / f"elabfs-dora@{S1}.gz")
    hand_to_login(member_dir)
    settings = settings_for(pool, sftp_dir, compression="gzip")
    # The first try cannot reach the source (a wrong pool name): the marker is written,
    # what was not recorded is said, and adopt run again once it is fixed records it.
    source = settings.source.model_copy(update={"pool": f"{pool.name}-typo"})
    first = adopt(settings.model_copy(update={"source": source}))
    assert first.recorded == [] and first.seed_files == 1 and not first.adopted_before
    (problem,) = first.problems
    assert problem.startswith("the source could not be read"), problem
    adoption = adopt(settings)
    assert adoption.adopted_before and adoption.marker == first.marker
    assert adoption.recorded == [dataset] and adoption.problems == []
    assert adoption.seed_files == 1
    prop = record_property(str(settings.target.parsed))
    assert zfs_get(prop, dataset) == adoption.marker.archive_id

    disk = sftp_dir.parent / f"{sftp_dir.name}-disk"
    disk.mkdir()
    for entry in list(sftp_dir.iterdir()):
        shutil.move(entry, disk / entry.name)
    (member,) = discover_members(settings)
    with pytest.raises(ArchiveRootError, match=f"is empty but {dataset}"):
        backup_member(settings, member)
    assert list(sftp_dir.iterdir()) == []

    for entry in list(disk.iterdir()):
        shutil.move(entry, sftp_dir / entry.name)
    result = backup_member(settings, member)
    assert (result.action, result.base, result.snapshot) == (Action.INCREMENTAL, S1, S2)


def gzip_bytes(data: bytes, out: Path) -> None:
    """What the seed left when gzip closed the file over a stream that was not whole."""
    out.write_bytes(subprocess.run(["gzip"], input=data, capture_output=True, check=True).stdout)


@pytest.mark.parametrize("fault", ["cut between snapshots", "named for another snapshot"])
def test_a_seed_base_that_decompresses_but_does_not_hold_its_snapshot_is_marked(
    pool_factory: Callable[[], Pool],
    sftp_dir: Path,
    settings_for: Callable[..., Settings],
    fault: str,
) -> None:
    """Two seed files that gzip reads to the end, each ending in an END record, yet neither
    restores the snapshot its name says: an `-I` stream that died between two snapshots
    (the last END is the inner one), and a file named S1.to.S3 holding S1 -> S2. The first
    night marks it and sends nothing; the next one builds on the sound full."""
    pool = pool_factory()
    dataset, _ = member_with_snapshots(pool, S1, S2, S3, S4)
    member_dir = sftp_dir / "dora"
    member_dir.mkdir()
    seed_full = member_dir / f"elabfs-dora@{S1}.gz"
    gzip_send(["zfs", "send", f"{dataset}@{S1}"], seed_full)
    bad = member_dir / f"elabfs-dora@{S1}.to.elabfs-dora@{S3}.gz"
    if fault == "cut between snapshots":
        argv = ["zfs", "send", "-I", f"{dataset}@{S1}", f"{dataset}@{S3}"]
        stream = subprocess.run(argv, capture_output=True, check=True).stdout
        gzip_bytes(stream[:-RECORD_SIZE], bad)  # all but the END that closes the -I stream
        expected = "stops after one of its snapshots"
    else:
        gzip_send(["zfs", "send", "-I", f"{dataset}@{S1}", f"{dataset}@{S2}"], bad)
        expected = "does not hold what its name says"
    hand_to_login(member_dir)
    settings = settings_for(pool, sftp_dir, compression="gzip")
    (member,) = discover_members(settings)
    adopt(settings)

    with pytest.raises(SeedBaseError, match=expected):
        backup_member(settings, member)
    assert (member_dir / f"{bad.name}.corrupt").is_file()
    result = backup_member(settings, member)
    assert (result.action, result.base, result.snapshot) == (Action.INCREMENTAL, S1, S4)
    restore = pool_factory()
    target = f"{restore.name}/elabfs-dora"
    new_file = member_dir / f"elabfs-dora@{S1}.to.elabfs-dora@{S4}.gz"
    receive_with_standard_tools([seed_full, new_file], target)
    assert guid(f"{target}@{S4}") == guid(f"{dataset}@{S4}")
