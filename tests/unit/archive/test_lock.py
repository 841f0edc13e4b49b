"""The member lock seen by a second run while the first is still filling it in."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from zfs_offsite.archive.lock import LOCK_NAME, MemberLock
from zfs_offsite.errors import LockBusyError
from zfs_offsite.remote.local import LocalStore


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
