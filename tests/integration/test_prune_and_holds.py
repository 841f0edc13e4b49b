"""Prune and base protection on real zfs-fuse and the real sshd."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.services import Pool, ensure_test_user
from tests.support.settings_edit import with_section
from tests.support.zfsdata import create_member, guid, snapshot, write_member_data
from zfs_offsite.archive.lock import LOCK_NAME, member_lock
from zfs_offsite.connect import open_runner, open_store
from zfs_offsite.errors import LockBusyError
from zfs_offsite.jobs.backup import BackupResult, backup_member, discover_members
from zfs_offsite.jobs.prune import prune_member
from zfs_offsite.jobs.restore import restore_member
from zfs_offsite.plan.backup import Action
from zfs_offsite.settings import Settings

pytestmark = pytest.mark.integration
S = [f"auto-2019080{d}.0200-1w" for d in range(6, 10)]


def backup(settings: Settings, force_full: bool = False) -> BackupResult:
    (member,) = discover_members(settings)
    return backup_member(settings, member, force_full=force_full)


def add(pool: Pool, dataset: str, name: str, seed: int) -> None:
    write_member_data(pool.mountpoint / dataset.split("/", 1)[1], seed, 1)
    snapshot(dataset, name)


def test_prune_deletes_an_unneeded_chain_and_the_kept_point_restores(
    pool_factory: Callable[[], Pool], sftp_dir: Path, settings_for: Callable[..., Settings]
) -> None:
    pool = pool_factory()
    dataset = create_member(pool.name, "erin")
    settings = settings_for(pool, sftp_dir)
    add(pool, dataset, S[0], 0)
    assert backup(settings).action is Action.FULL
    add(pool, dataset, S[1], 1)
    assert backup(settings).action is Action.INCREMENTAL
    add(pool, dataset, S[2], 2)
    assert backup(settings, force_full=True).action is Action.FULL  # a new chain
    add(pool, dataset, S[3], 3)
    assert backup(settings).action is Action.INCREMENTAL

    member_dir = sftp_dir / "erin"
    stray = member_dir / "notes.txt"
    stray.write_text("the admin's notes\n")
    stale = member_dir / f"elabfs-erin@{S[3]}.zst.partial"
    stale.write_bytes(b"x" * 10)
    old = time.time() - 3 * 86400
    os.utime(stale, (old, old))
    fresh = member_dir / "elabfs-erin@later.zst.partial"
    fresh.write_bytes(b"y")
    user = ensure_test_user()
    for path in member_dir.iterdir():
        os.chown(path, user.pw_uid, user.pw_gid)
    before = sorted(p.name for p in member_dir.iterdir())

    later = datetime.now(UTC) + timedelta(days=3)  # all four points are now 3 days old
    recent = (later - timedelta(hours=1)).timestamp()
    os.utime(fresh, (recent, recent))  # an upload still running at `later`
    settings = with_section(settings, "retention", policy="all 1d")
    with closing(open_store(settings.target)) as store:
        dry = prune_member(settings, store, "erin", now=later, dry_run=True)
        assert sorted(p.name for p in member_dir.iterdir()) == before  # dry run: untouched
        plan = prune_member(settings, store, "erin", now=later)
    assert [p.snapshot for p in plan.kept] == [S[3]] == [p.snapshot for p in dry.kept]
    assert sorted(f.filename for f in plan.delete) == sorted(
        [f"elabfs-erin@{S[0]}.zst", f"elabfs-erin@{S[0]}.to.elabfs-erin@{S[1]}.zst"]
    )
    after = sorted(p.name for p in member_dir.iterdir())
    chain = [f"elabfs-erin@{S[2]}.zst", f"elabfs-erin@{S[2]}.to.elabfs-erin@{S[3]}.zst"]
    sidecars = [n + suffix for n in chain for suffix in ("", ".json", ".sha256")]
    assert after == sorted([*sidecars, "notes.txt", fresh.name])  # stale partial gone

    target = pool_factory()
    with closing(open_runner(settings)) as runner, closing(open_store(settings.target)) as store:
        restored = restore_member(settings, runner, store, "erin", f"{target.name}/erin")
    assert restored.snapshot == S[3]
    assert guid(f"{target.name}/erin@{S[3]}") == guid(f"{dataset}@{S[3]}")


def destroy(snapshot_name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["zfs", "destroy", snapshot_name], capture_output=True, text=True)


def test_hold_keeps_the_base_until_the_next_upload_lands(
    pool_factory: Callable[[], Pool], sftp_dir: Path, settings_for: Callable[..., Settings]
) -> None:
    pool = pool_factory()
    dataset = create_member(pool.name, "hank")
    settings = settings_for(pool, sftp_dir)
    add(pool, dataset, S[0], 0)
    first = backup(settings)
    assert first.protection.startswith("hold zfs-offsite-")
    refused = destroy(f"{dataset}@{S[0]}")
    assert refused.returncode != 0 and "busy" in refused.stderr  # the NAS cannot prune it yet

    add(pool, dataset, S[1], 1)
    second = backup(settings)
    assert second.action is Action.INCREMENTAL
    assert destroy(f"{dataset}@{S[0]}").returncode == 0  # released once S[1] landed
    assert destroy(f"{dataset}@{S[1]}").returncode != 0  # the hold moved forward

    add(pool, dataset, S[2], 2)
    off = settings.model_copy(update={"protect_base": "off"})
    third = backup(off)
    assert third.protection == "off"
    assert destroy(f"{dataset}@{S[2]}").returncode == 0  # nothing marked it


def test_prune_called_directly_waits_for_no_other_writer(
    pool_factory: Callable[[], Pool], sftp_dir: Path, settings_for: Callable[..., Settings]
) -> None:
    """The job takes the writer lock itself: a script calling it gets no way around it."""
    pool = pool_factory()
    dataset = create_member(pool.name, "ruth")
    settings = settings_for(pool, sftp_dir)
    add(pool, dataset, S[0], 0)
    backup(settings)
    add(pool, dataset, S[1], 1)
    backup(settings, force_full=True)  # a second chain: the first is deletable
    settings = with_section(settings, "retention", policy="all 1d")
    settings = with_section(settings, "lock", wait_seconds=1.0)
    later = datetime.now(UTC) + timedelta(days=3)
    member_dir = sftp_dir / "ruth"
    before = sorted(p.name for p in member_dir.iterdir())
    with closing(open_store(settings.target)) as store:
        # Another writer (a backup of this member in another run) holds the lock.
        with member_lock(settings.lock, store, "ruth", "backup", "backup-nas-nightly"):
            with pytest.raises(LockBusyError, match="backup run backup-nas-nightly"):
                prune_member(settings, store, "ruth", now=later, run="prune-by-hand")
            assert sorted(p.name for p in member_dir.iterdir()) == sorted([*before, LOCK_NAME])
            dry = prune_member(settings, store, "ruth", now=later, dry_run=True)  # reads only
        plan = prune_member(settings, store, "ruth", now=later, run="prune-by-hand")
    assert (
        [f.filename for f in plan.delete]
        == [f"elabfs-ruth@{S[0]}.zst"]
        == [f.filename for f in dry.delete]
    )
    assert not (member_dir / f"elabfs-ruth@{S[0]}.zst").exists()
    assert not (member_dir / LOCK_NAME).exists()  # released after the deletes
