"""A sidecar-less file in a chain this tool writes is no link (issue 19, item 5), on real
zfs-fuse and the real sshd: an old cron job's cut-short incremental is reported, the next
night is sent from a real base, and the restore chain stays sound."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from tests.support.services import Pool, ensure_test_user
from tests.support.zfsdata import (
    create_member,
    guid,
    gzip_send,
    snapshot,
    tree_digest,
    write_member_data,
)
from zfs_offsite.archive.index import read_member_archive
from zfs_offsite.connect import open_runner, open_store
from zfs_offsite.errors import ArchiveConflictError
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.jobs.restore import restore_member
from zfs_offsite.jobs.status import Health, Thresholds, judge, read_status
from zfs_offsite.jobs.verify import Verdict, verify_member
from zfs_offsite.plan.backup import Action
from zfs_offsite.plan.chains import restore_points
from zfs_offsite.settings import Settings

pytestmark = pytest.mark.integration

S1, S2, S3 = "auto-20190806.0200-1w", "auto-20190807.0200-1w", "auto-20190808.0200-1w"
FULL = f"elabfs-tru@{S1}.gz"
JUNK = f"elabfs-tru@{S1}.to.elabfs-tru@{S2}.gz"
NEXT = f"elabfs-tru@{S1}.to.elabfs-tru@{S3}.gz"


def test_a_cut_cron_file_is_no_base_and_the_restore_chain_stays_sound(
    pool_factory: Callable[[], Pool], sftp_dir: Path, settings_for: Callable[..., Settings]
) -> None:
    pool = pool_factory()
    dataset = create_member(pool.name, "tru")
    mount = pool.mountpoint / "elabfs-tru"
    settings = settings_for(pool, sftp_dir, compression="gzip")  # the seed's names

    def backup() -> tuple[Action, str | None, str | None, str]:
        (member,) = discover_members(settings)
        result = backup_member(settings, member)
        return result.action, result.base, result.snapshot, result.reason

    write_member_data(mount, 0, 1)
    snapshot(dataset, S1)
    assert backup()[0] is Action.FULL  # the tool now writes this member's chain

    # The old cron job still runs: its S1 -> S2 is cut short and has no sidecars.
    time.sleep(1.1)  # a later night; SFTP mtimes are whole seconds
    write_member_data(mount, 1, 1)
    snapshot(dataset, S2)
    junk = sftp_dir / "tru" / JUNK
    gzip_send(["zfs", "send", "-i", f"{dataset}@{S1}", f"{dataset}@{S2}"], junk)
    with junk.open("r+b") as handle:
        handle.truncate(junk.stat().st_size // 2)
    user = ensure_test_user()
    os.chown(junk, user.pw_uid, user.pw_gid)

    (member,) = discover_members(settings)
    with closing(open_store(settings.target)) as store:
        status = read_status(store, member)
        verified = verify_member(settings, store, "tru", mark=False)
    assert status.newest_archived == S1  # not S2 "up to date"
    health, reasons = judge(status, Thresholds(1e9, 1e9))
    assert health is Health.WARNING
    (line,) = reasons
    assert line.startswith(f"{JUNK} has no .sha256 or .json but was written after")
    assert "move the file out of the member directory" in line
    (check,) = [f for f in verified.files if f.filename == JUNK]
    assert check.verdict is Verdict.CORRUPT  # read in full: cut short

    write_member_data(mount, 2, 1)
    snapshot(dataset, S3)
    action, base, sent, reason = backup()
    assert (action, base, sent) == (Action.INCREMENTAL, S1, S3)  # a real base, not the junk
    assert line in reason
    assert (sftp_dir / "tru" / NEXT).is_file() and junk.is_file()  # the junk is left alone

    target = pool_factory()
    destination = f"{target.name}/tru"
    with closing(open_runner(settings)) as runner, closing(open_store(settings.target)) as st:
        restored = restore_member(settings, runner, st, "tru", destination)
    assert [f.filename for f in restored.files] == [FULL, NEXT]
    assert guid(f"{destination}@{S3}") == guid(f"{dataset}@{S3}")
    assert tree_digest(target.mountpoint / "tru") == tree_digest(mount)


def test_a_base_destroyed_on_the_nas_is_described_as_such_and_a_full_follows(
    pool_factory: Callable[[], Pool], sftp_dir: Path, settings_for: Callable[..., Settings]
) -> None:
    pool = pool_factory()
    dataset = create_member(pool.name, "tru")
    settings = settings_for(pool, sftp_dir, local=True).model_copy(update={"protect_base": "off"})
    write_member_data(pool.mountpoint / "elabfs-tru", 0, 1)
    snapshot(dataset, S1)
    (member,) = discover_members(settings)
    assert backup_member(settings, member).action is Action.FULL
    write_member_data(pool.mountpoint / "elabfs-tru", 1, 1)
    snapshot(dataset, S2)
    subprocess.run(["zfs", "destroy", f"{dataset}@{S1}"], check=True)  # the NAS's retention

    (member,) = discover_members(settings)
    result = backup_member(settings, member)
    assert (result.action, result.snapshot) == (Action.FULL, S2)
    assert "no snapshot of it is in the archive" not in result.reason
    assert result.reason.startswith(
        f"the archive's newest snapshot {S1} no longer exists on the NAS ({dataset}@{S1} was "
        "destroyed on the NAS, and no bookmark of it is left)"
    )
    assert f"a full of {S2} starts a new chain; the archive's restore points stay" in (
        result.reason
    )
    assert (sftp_dir / "tru" / f"elabfs-tru@{S1}.zst").is_file()


def test_conflict_on_a_reused_snapshot_name_advises_keeping_the_restore_point(
    pool_factory: Callable[[], Pool], sftp_dir: Path, settings_for: Callable[..., Settings]
) -> None:
    pool = pool_factory()
    dataset = create_member(pool.name, "tru")
    mount = pool.mountpoint / "elabfs-tru"
    settings = settings_for(pool, sftp_dir, local=True).model_copy(update={"protect_base": "off"})
    for seed, name in enumerate((S1, S2)):
        write_member_data(mount, seed, 1)
        snapshot(dataset, name)
        (member,) = discover_members(settings)
        backup_member(settings, member)
    stored = f"elabfs-tru@{S1}.to.elabfs-tru@{S2}.zst"
    assert (sftp_dir / "tru" / stored).is_file()
    # S2 destroyed and taken again under the same name (another GUID).
    subprocess.run(["zfs", "destroy", f"{dataset}@{S2}"], check=True)
    write_member_data(mount, 5, 1)
    snapshot(dataset, S2)

    (member,) = discover_members(settings)
    with pytest.raises(ArchiveConflictError) as failed:
        backup_member(settings, member)
    message = str(failed.value)
    assert "move it aside" not in message
    assert f"{stored} exists but is not a restorable copy of {dataset}@{S2}" in message
    assert "a snapshot name reused on the NAS; do not move or delete it" in message
    assert f"zfs rename {dataset}@{S2} {dataset}@{S2}-new" in message
    assert (sftp_dir / "tru" / stored).is_file()  # never overwritten

    # The advice works: renamed, the new snapshot goes under a free name; both points stay.
    subprocess.run(["zfs", "rename", f"{dataset}@{S2}", f"{dataset}@{S2}-new"], check=True)
    (member,) = discover_members(settings)
    assert backup_member(settings, member).action is Action.INCREMENTAL
    with closing(open_store(settings.target)) as store:
        points = [p.snapshot for p in restore_points(read_member_archive(store, "tru", None).files)]
    assert points == [S1, S2, f"{S2}-new"]
