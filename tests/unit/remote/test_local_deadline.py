"""file:// calls that block in the kernel fail after target.timeout instead of hanging.

A FIFO nobody opens from the other side blocks `open` like a hung disk does; the
fault tests freeze a real ext4 (tests/faults/test_stalls.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from zfs_offsite.errors import StallError
from zfs_offsite.remote.local import LocalStore


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "stuck"
    os.mkfifo(path)
    yield path
    fd = os.open(path, os.O_RDWR)  # both ends at once: every blocked open returns
    os.close(fd)


def test_a_read_that_blocks_fails_as_a_stall_and_so_does_every_later_call(
    tmp_path: Path, fifo: Path
) -> None:
    store = LocalStore(tmp_path, timeout=1)
    started = time.monotonic()
    with pytest.raises(StallError) as stalled:
        list(store.read_chunks("stuck"))
    assert time.monotonic() - started < 5
    message = str(stalled.value)
    assert message.startswith(f"file://{tmp_path}: the backup server made no progress for 1 s")
    assert f"opening {fifo}" in message
    assert stalled.value.retryable
    started = time.monotonic()
    with pytest.raises(StallError):
        store.listdir("")  # it would only queue behind the stuck call
    assert time.monotonic() - started < 0.5


def test_a_write_open_that_blocks_fails_as_a_stall(tmp_path: Path, fifo: Path) -> None:
    store = LocalStore(tmp_path, timeout=1)
    with pytest.raises(StallError, match="made no progress for 1 s"):
        store.open_append("stuck", 0)


def test_calls_that_finish_in_time_answer_as_before(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, timeout=1)
    with store.open_write("a.partial") as handle:
        handle.write(b"data")
    store.rename("a.partial", "a")
    assert [e.name for e in store.listdir("")] == ["a"]
    assert b"".join(store.read_chunks("a")) == b"data"
    with pytest.raises(FileExistsError):
        store.open_write("a")
    with pytest.raises(FileNotFoundError):
        list(store.read_chunks("missing"))
    store.remove("a")
    assert store.listdir("") == []
    store.close()
