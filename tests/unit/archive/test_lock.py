"""The member lock: seen while it is filled in, and judged on the server's clock alone."""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from zfs_offsite.archive.lock import LOCK_NAME, Holder, MemberLock
from zfs_offsite.errors import LockBusyError
from zfs_offsite.remote.local import LocalStore
from zfs_offsite.values.entries import StoreEntry


def test_a_lock_being_filled_in_is_read_again_and_its_holder_named(tmp_path: Path) -> None:
    """Two runs started together: the second may see the first's lock file created but
    still empty. It must name the holder, not call the lock unreadable."""
    (tmp_path / "erin").mkdir()
    store = LocalStore(tmp_path)
    first = MemberLock(store, "erin", purpose="backup", run="nightly", wait_seconds=0)
    lock_file = tmp_path / "erin" / LOCK_NAME
    lock_file.touch()  # created, not yet written

    def fill_in() -> None:
        time.sleep(0.5)
        lock_file.unlink()
        first.acquire()

    filler = threading.Thread(target=fill_in)
    filler.start()
    second = MemberLock(store, "erin", purpose="backup", run="manual", wait_seconds=0)
    with pytest.raises(LockBusyError) as busy:
        second.acquire()
    filler.join()
    assert "unreadable" not in str(busy.value)
    assert "backup run nightly" in str(busy.value)
    first.release()


def test_a_lock_that_stays_unreadable_is_said_so(tmp_path: Path) -> None:
    (tmp_path / "erin").mkdir()
    (tmp_path / "erin" / LOCK_NAME).write_text("not json")
    store = LocalStore(tmp_path)
    started = time.monotonic()
    with pytest.raises(LockBusyError, match="unreadable"):
        MemberLock(store, "erin", purpose="backup", wait_seconds=0).acquire()
    assert time.monotonic() - started < 10


class SkewedServer(LocalStore):
    """A server whose clock is `skew` seconds off this host's: every mtime it sets is off."""

    def __init__(self, root: Path, skew: float) -> None:
        super().__init__(root)
        self.skew = skew

    def stat(self, path: str) -> StoreEntry | None:
        entry = super().stat(path)
        return None if entry is None else replace(entry, mtime=entry.mtime + self.skew)

    def touch(self, path: str, mtime: float | None = None) -> None:
        # As over SFTP, a touch sends a time: the one given, or this host's now.
        sent = time.time() if mtime is None else mtime
        os.utime(self.root / path, (sent - self.skew, sent - self.skew))


def other_hosts_lock(store: LocalStore, member: str) -> None:
    """A lock held by a run on another host: never judged by its process, only by its age."""
    holder = Holder("stl-other-host", 4242, "boot", "nightly", "backup", "2026-01-01", "t0ken")
    (store.root / member).mkdir()
    (store.root / member / LOCK_NAME).write_text(json.dumps(asdict(holder)))


def test_a_live_lock_on_a_server_an_hour_behind_is_not_taken_over(tmp_path: Path) -> None:
    store = SkewedServer(tmp_path, skew=-3600)
    other_hosts_lock(store, "erin")  # touched just now, by the server's clock
    taker = MemberLock(store, "erin", purpose="backup", wait_seconds=0, stale_seconds=60)
    with pytest.raises(LockBusyError, match="backup run nightly on stl-other-host"):
        taker.acquire()
    assert "t0ken" in (tmp_path / "erin" / LOCK_NAME).read_text()


def test_a_dead_lock_on_a_server_an_hour_ahead_is_taken_over(tmp_path: Path) -> None:
    store = SkewedServer(tmp_path, skew=3600)
    other_hosts_lock(store, "erin")
    lock_file = tmp_path / "erin" / LOCK_NAME
    untouched = time.time() - 120
    os.utime(lock_file, (untouched, untouched))  # untouched for 120 s on the server
    taker = MemberLock(store, "erin", purpose="backup", wait_seconds=0, stale_seconds=60)
    taker.acquire()
    assert taker.holder.token in lock_file.read_text()
    taker.release()
    assert list((tmp_path / "erin").iterdir()) == []  # no probe of the clock left behind


def test_the_heartbeat_sets_the_servers_time_not_this_hosts(tmp_path: Path) -> None:
    store = SkewedServer(tmp_path, skew=-3600)
    (tmp_path / "erin").mkdir()
    holder = MemberLock(store, "erin", purpose="backup", wait_seconds=0)
    holder.acquire()
    holder._last_refresh = 0.0  # the heartbeat is due
    holder.refresh()
    entry = store.stat(f"erin/{LOCK_NAME}")
    assert entry is not None
    server_now = time.time() - 3600
    assert abs(entry.mtime - server_now) < 30, entry.mtime - server_now
    holder.release()
