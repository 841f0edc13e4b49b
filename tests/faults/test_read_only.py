"""A backup server whose file system went read-only is named as such, with the fix.

The archive's disk is a tmpfs of its own, remounted read-only between two nights
(as a kernel does to a failing disk); the second night's run must say the server's
file system is read-only, naming the target, not a lock file it could not create.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.services import Pool, SshServer, ensure_test_user
from tests.support.zfsdata import SNAP, create_member, snapshot, write_member_data
from zfs_offsite.archive.lock import LOCK_NAME
from zfs_offsite.errors import ZfsOffsiteError
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.settings import load_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def own_disk(tmp_path: Path) -> Iterator[Path]:
    """A 32 MiB tmpfs owned by the SFTP test user, unmounted afterwards."""
    user = ensure_test_user()
    disk = Path(user.pw_dir) / f"stl-ro-{tmp_path.name[-12:]}"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(disk)], check=True)
    os.chown(disk, user.pw_uid, user.pw_gid)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
        disk.rmdir()


@pytest.mark.parametrize("leftover_lock", [False, True], ids=["clean", "dead-run's-lock"])
@pytest.mark.parametrize("client", ["openssh", "paramiko", "file"])
def test_a_read_only_server_is_named_as_such(
    pool_factory: Callable[[], Pool],
    own_disk: Path,
    sshd: SshServer,
    client: str,
    leftover_lock: bool,
) -> None:
    pool = pool_factory()
    dataset = create_member(pool.name, "erin")
    write_member_data(pool.mountpoint / "elabfs-erin", 3, 1)
    snapshot(dataset, SNAP)
    target: dict[str, object] = (
        {"url": f"file://{own_disk}"}
        if client == "file"
        else {
            "url": f"sftp://{sshd.user}@127.0.0.1:{sshd.port}{own_disk}",
            "key_file": str(sshd.client_key),
            "known_hosts": str(sshd.known_hosts),
            "client": client,
        }
    )
    settings = load_settings(source={"pool": pool.name}, target=target)
    (member,) = discover_members(settings)
    backup_member(settings, member)  # the first night: stored
    snapshot(dataset, "auto-20190807.0200-1w")
    if leftover_lock:  # a run on another host died as the disk went bad: its lock is stale
        lock = own_disk / "erin" / LOCK_NAME
        lock.write_text(json.dumps({"host": "stl-gone", "pid": 4242, "token": "t0ken"}))
        os.utime(lock, (time.time() - 7200, time.time() - 7200))
    subprocess.run(["mount", "-o", "remount,ro", str(own_disk)], check=True)
    (member,) = discover_members(settings)
    with pytest.raises(ZfsOffsiteError) as failed:
        backup_member(settings, member)
    message = str(failed.value)
    assert "read-only" in message, message
    assert str(own_disk) in message, message
    assert "remount" in message, message  # the fix
    assert ".zfs-offsite.lock" not in message, message
    assert "\n" not in message
