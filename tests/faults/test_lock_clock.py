"""A lock judged on the server's clock alone, over the real sshd, with this host's clock off.

The server (the test sshd's file system) keeps the true time; this process's clock is
moved an hour ahead, as on a client whose clock drifted (or a server an hour behind).
A live, heartbeating lock must stay its holder's, and its mtime must stay the server's.
"""

from __future__ import annotations

import time
from contextlib import closing
from pathlib import Path

import pytest

from tests.support.services import SshServer
from zfs_offsite.archive.lock import LOCK_NAME, MemberLock
from zfs_offsite.connect import open_store
from zfs_offsite.errors import LockBusyError
from zfs_offsite.settings import load_settings

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("client", ["openssh", "paramiko"])
def test_a_live_lock_is_not_taken_over_when_this_hosts_clock_is_an_hour_off(
    sftp_dir: Path, sshd: SshServer, client: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = load_settings(
        source={"pool": "stl-unused"},
        target={
            "url": f"sftp://{sshd.user}@127.0.0.1:{sshd.port}{sftp_dir}",
            "key_file": str(sshd.client_key),
            "known_hosts": str(sshd.known_hosts),
            "client": client,
        },
    ).target
    with closing(open_store(target)) as holder_store, closing(open_store(target)) as taker_store:
        holder_store.makedirs("erin")
        holder = MemberLock(holder_store, "erin", purpose="backup", run="nightly", wait_seconds=0)
        holder.acquire()
        true_time = time.time
        monkeypatch.setattr(time, "time", lambda: true_time() + 3600)
        holder._last_refresh = 0.0  # its heartbeat is due
        holder.refresh()
        lock_file = sftp_dir / "erin" / LOCK_NAME
        assert abs(lock_file.stat().st_mtime - true_time()) < 30, "heartbeat not in server time"
        taker = MemberLock(
            taker_store, "erin", purpose="backup", run="manual", wait_seconds=0, stale_seconds=60
        )
        with pytest.raises(LockBusyError, match="backup run nightly"):
            taker.acquire()
        holder.verify()  # still the holder's
        holder.release()
        assert sorted(p.name for p in (sftp_dir / "erin").iterdir()) == []
