"""A flush started behind the writes (`sync_later`) over SFTP: the next writes go out
meanwhile, and the flush counts as done only once its reply has been read in turn.

Resumable uploads use this at each checkpoint, so the server flushes one chunk while
the next is sent; a checkpoint must never be recorded before its bytes are durable.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from tests.support.services import Pool
from zfs_offsite.connect import open_store
from zfs_offsite.remote.sftp import WRITE_WINDOW
from zfs_offsite.settings import Settings

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("client", ["openssh", "paramiko"])
def test_sync_later_is_done_once_its_reply_is_read_while_writing_goes_on(
    settings_for: Callable[..., Settings], sftp_dir: Path, client: str
) -> None:
    target = settings_for(Pool("sl-unused", Path("/nonexistent")), sftp_dir, client=client).target
    first, more = os.urandom(3 * 1024 * 1024), os.urandom(WRITE_WINDOW + 1024 * 1024)
    with closing(open_store(target)) as store, store.open_write("f") as writer:
        writer.write(first)
        flush = writer.sync_later()
        assert not flush.done()  # nothing waited: the reply is still on its way
        writer.write(more)  # more than the window in flight: the flush's reply is read
        assert flush.done()
        assert (sftp_dir / "f").stat().st_size >= len(first)
        writer.write(first)
        second = writer.sync_later()
        assert not second.done()
        second.wait()
        assert second.done()
        assert (sftp_dir / "f").stat().st_size == 2 * len(first) + len(more)
    assert (sftp_dir / "f").read_bytes() == first + more + first
