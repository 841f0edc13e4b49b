"""A full backup server: reported as such, permanent, and nothing left looking complete."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.faults import SlowTarget, leftovers, sha256sum_check, stored_files
from tests.support.services import Pool, SshServer
from tests.support.zfsdata import SNAP
from zfs_offsite.errors import DiskFullError, ZfsOffsiteError
from zfs_offsite.jobs.archive_root import init
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.plan.backup import Action
from zfs_offsite.settings import Settings, load_settings

pytestmark = pytest.mark.integration
PAGE = 4096


def pages(size: int) -> int:
    return -(-size // PAGE)


def free_bytes(path: Path) -> int:
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize


def fill_to(disk: Path, free: int) -> Path:
    """Leave exactly `free` bytes (whole pages) free on the tmpfs."""
    filler = disk / "filler.bin"
    size = free_bytes(disk) - free
    assert size > 0, "the test disk is too small for this case"
    with filler.open("wb") as handle:
        handle.write(b"\0" * size)
    assert free_bytes(disk) == free
    return filler


def stored_size(settings_for: Callable[..., Settings], pool: Pool, tmp_path: Path) -> int:
    """The stored size of erin's full stream (zstd output is deterministic): a dry copy."""
    reference = tmp_path / "reference"
    settings = settings_for(pool, reference, local=True)
    (member,) = discover_members(settings)
    result = backup_member(settings, member)
    assert result.stream is not None
    for path in sorted(reference.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    return result.stream.stored_bytes


def sftp_settings(target: SlowTarget | None, sshd: SshServer, pool: Pool, disk: Path) -> Settings:
    port = target.proxy.port if target else sshd.port
    known = target.known_hosts if target else sshd.known_hosts
    return load_settings(
        source={"pool": pool.name},
        target={
            "url": f"sftp://{sshd.user}@127.0.0.1:{port}{disk}",
            "key_file": str(sshd.client_key),
            "known_hosts": str(known),
            "timeout": 20,
        },
    )


@pytest.mark.parametrize("client", ["openssh", "paramiko"])
def test_disk_full_while_sidecars_are_written(
    big_member: Pool,
    small_disk: Path,
    sshd: SshServer,
    settings_for: Callable[..., Settings],
    tmp_path: Path,
    client: str,
) -> None:
    size = stored_size(settings_for, big_member, tmp_path)
    (small_disk / "erin").mkdir()
    os.chown(small_disk / "erin", os.stat(small_disk).st_uid, os.stat(small_disk).st_gid)
    # Room for the lock and the stream, none for the sidecars.
    fill_to(small_disk, (pages(size) + 1) * PAGE)
    settings = settings_for(big_member, small_disk, client=client)
    (member,) = discover_members(settings)
    with pytest.raises(DiskFullError) as caught:
        backup_member(settings, member)
    message = str(caught.value)
    assert message.startswith("backup server disk is full ("), message
    assert " MB free, " in message and "needed)" in message
    assert not caught.value.retryable
    # The free space it reports is what the disk has now, not a guess.
    reported = re.search(r"\((\d+) MB free", message)
    assert reported and abs(int(reported.group(1)) * 1e6 - free_bytes(small_disk)) < 1.5e6
    assert stored_files(small_disk) == [small_disk / "filler.bin"]
    assert [n for n in leftovers(small_disk) if n != ".zfs-offsite.lock"] == []
    # Space freed: the next run stores a complete, checkable file.
    (small_disk / "filler.bin").unlink()
    assert backup_member(settings, member).action is Action.FULL
    sha256sum_check(small_disk)
    assert leftovers(small_disk) == []


def test_space_that_runs_out_and_comes_back_mid_upload(
    big_member: Pool,
    small_disk: Path,
    sshd: SshServer,
    settings_for: Callable[..., Settings],
    slow_target: Callable[[int], SlowTarget],
    tmp_path: Path,
) -> None:
    size = stored_size(settings_for, big_member, tmp_path)
    (small_disk / "erin").mkdir()
    os.chown(small_disk / "erin", os.stat(small_disk).st_uid, os.stat(small_disk).st_gid)
    # The disk runs out 4 MiB before the end; 0.3 s later space comes back.
    filler = fill_to(small_disk, (pages(size) + 1) * PAGE - 4 * 1024 * 1024)
    settings = sftp_settings(slow_target(3_000_000), sshd, big_member, small_disk)
    (member,) = discover_members(settings)
    freed = threading.Event()

    def free_space_after_it_ran_out() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and free_bytes(small_disk) > 64 * 1024:
            time.sleep(0.02)
        time.sleep(0.3)
        filler.unlink()
        freed.set()

    watcher = threading.Thread(target=free_space_after_it_ran_out, daemon=True)
    watcher.start()
    with pytest.raises(ZfsOffsiteError) as caught:
        backup_member(settings, member)
    watcher.join(timeout=130)
    assert freed.is_set(), "the disk never ran out: the test did not test anything"
    assert "erin" in str(caught.value) or "disk is full" in str(caught.value)
    # No file with a hole under a final name.
    assert stored_files(small_disk) == []
    assert [n for n in leftovers(small_disk) if n != ".zfs-offsite.lock"] == []
    assert backup_member(settings, member).action is Action.FULL
    assert [p.name for p in stored_files(small_disk)] == [
        f"elabfs-erin@{SNAP}.zst" + s for s in ("", ".json", ".sha256")
    ]
    sha256sum_check(small_disk)


def test_no_room_even_for_the_lock(
    source_pool: Pool, small_disk: Path, settings_for: Callable[..., Settings]
) -> None:
    (small_disk / "alice").mkdir()
    os.chown(small_disk / "alice", os.stat(small_disk).st_uid, os.stat(small_disk).st_gid)
    settings = settings_for(source_pool, small_disk)
    init(settings)  # an archive already: the lock is the first thing this backup writes
    fill_to(small_disk, 0)
    alice = next(m for m in discover_members(settings) if m.name == "alice")
    with pytest.raises(DiskFullError) as caught:
        backup_member(settings, alice)
    assert str(caught.value).startswith(
        "backup server disk is full (0 MB free, a few bytes for the member's lock needed): "
        "alice/.zfs-offsite.lock was not stored"
    )
    assert leftovers(small_disk) == []  # no empty lock left to block the next run
    (small_disk / "filler.bin").unlink()
    assert backup_member(settings, alice).action is Action.FULL
    sha256sum_check(small_disk)
