"""Reading a stored file back over SFTP: every byte in order, over both SSH clients.

`read_chunks` keeps READ requests in flight and receives each reply into its place
(restore, verify and the resume check read this way); these cases pin what a user
relies on: the bytes are exactly the file's at any size, a reader that stops early
leaves the connection usable, and a file that shrinks while read is an integrity
error naming it, not a lost connection.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from tests.support.services import SshServer
from zfs_offsite.connect import open_store
from zfs_offsite.errors import IntegrityError
from zfs_offsite.remote.sftp import READ_CHUNK, READ_WINDOW
from zfs_offsite.remote.store import Store
from zfs_offsite.settings import load_settings

pytestmark = pytest.mark.integration

CLIENTS = ["openssh", "paramiko"]


@pytest.fixture
def store_for(sshd: SshServer, sftp_dir: Path) -> Callable[[str], Store]:
    def make(client: str) -> Store:
        target = load_settings(
            source={"pool": "rd-unused"},
            target={
                "url": f"sftp://{sshd.user}@127.0.0.1:{sshd.port}{sftp_dir}",
                "key_file": str(sshd.client_key),
                "known_hosts": str(sshd.known_hosts),
                "client": client,
            },
        ).target
        return open_store(target)

    return make


def stored(directory: Path, name: str, size: int) -> bytes:
    data = os.urandom(size)
    path = directory / name
    path.write_bytes(data)
    os.chmod(path, 0o644)  # the SFTP user reads it
    return data


@pytest.mark.parametrize("client", CLIENTS)
def test_read_chunks_returns_every_byte_in_order_at_any_size(
    store_for: Callable[[str], Store], sftp_dir: Path, client: str
) -> None:
    sizes = [0, 1, READ_CHUNK - 1, READ_CHUNK + 7, 2 * READ_WINDOW + 13]
    files = {f"f{size}": stored(sftp_dir, f"f{size}", size) for size in sizes}
    with closing(store_for(client)) as store:
        for name, data in files.items():
            assert b"".join(store.read_chunks(name)) == data, name


@pytest.mark.parametrize("client", CLIENTS)
def test_a_reader_that_stops_early_leaves_the_connection_usable(
    store_for: Callable[[str], Store], sftp_dir: Path, client: str
) -> None:
    stored(sftp_dir, "big", 3 * READ_WINDOW)
    small = stored(sftp_dir, "small", 5000)
    with closing(store_for(client)) as store:
        chunks = store.read_chunks("big")
        assert len(next(chunks)) > 0  # a window of replies is still on its way
        chunks.close()  # type: ignore[attr-defined]  # a generator: what restore's abort does
        assert b"".join(store.read_chunks("small")) == small
        entry = store.stat("big")
        assert entry is not None and entry.size == 3 * READ_WINDOW


@pytest.mark.parametrize("client", CLIENTS)
def test_a_file_that_shrinks_while_read_is_an_integrity_error_naming_it(
    store_for: Callable[[str], Store], sftp_dir: Path, client: str
) -> None:
    stored(sftp_dir, "shrinks.zst", 3 * READ_WINDOW)
    with closing(store_for(client)) as store:
        chunks = store.read_chunks("shrinks.zst")
        next(chunks)
        os.truncate(sftp_dir / "shrinks.zst", READ_WINDOW + READ_CHUNK)
        with pytest.raises(IntegrityError, match=r"shrinks\.zst ends before byte \d+"):
            for _ in chunks:
                pass
        assert store.stat("shrinks.zst") is not None  # the connection still answers


@pytest.mark.parametrize("client", CLIENTS)
def test_writes_and_stats_between_chunks_leave_the_read_whole(
    store_for: Callable[[str], Store], sftp_dir: Path, client: str
) -> None:
    """The resume check reads a partial while the upload writes on the same connection."""
    data = stored(sftp_dir, "partial", 3 * READ_WINDOW)
    with closing(store_for(client)) as store:
        chunks = store.read_chunks("partial")
        got = [next(chunks)]  # a window of READ replies is still on its way
        with store.open_write("written") as out:
            out.write(b"x" * 5000)
        assert store.stat("written") is not None
        got += list(chunks)
        assert b"".join(got) == data
        early = store.read_chunks("partial")
        next(early)
        assert store.stat("partial") is not None  # replies owed to `early` arrive first
        early.close()  # type: ignore[attr-defined]
    assert (sftp_dir / "written").read_bytes() == b"x" * 5000
