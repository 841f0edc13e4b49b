"""Remote storage behind one small protocol: a local directory or an SFTP server.

Paths are relative to the target's root and use `/`. Writers go to a
`.partial` name and are renamed into place only when complete.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

if TYPE_CHECKING:
    from zfs_offsite.settings import TargetSettings


@dataclass(frozen=True)
class StoreEntry:
    """One directory entry on the backup server."""

    name: str
    size: int
    mtime: float
    is_dir: bool = False
    is_symlink: bool = False  # from lstat: a link is never followed, read or deleted through


class Store(Protocol):
    """What the tool needs from a backup server, and nothing more."""

    description: str

    def listdir(self, path: str) -> list[StoreEntry]:
        """Entries of a directory; an empty list if it does not exist."""
        ...

    def stat(self, path: str) -> StoreEntry | None: ...
    def makedirs(self, path: str) -> None: ...
    def open_write(self, path: str) -> BinaryIO:
        """A new file (truncated if it exists), for a `.partial` name only."""
        ...

    def open_read(self, path: str) -> BinaryIO:
        """A small file (sidecars); large files go through `read_chunks`."""
        ...

    def read_chunks(self, path: str) -> Iterator[bytes]:
        """A whole file as a stream of chunks, read ahead within bounded memory."""
        ...

    def rename(self, source: str, destination: str) -> None:
        """Atomic rename that replaces `destination` (POSIX rename semantics)."""
        ...

    def remove(self, path: str) -> None: ...
    def close(self) -> None: ...


def write_small_file(store: Store, path: str, data: bytes) -> None:
    """Write a small file atomically: `.partial`, then rename."""
    partial = path + ".partial"
    with store.open_write(partial) as handle:
        handle.write(data)
    store.rename(partial, path)


def read_small_file(store: Store, path: str, limit: int = 1024 * 1024) -> bytes:
    with store.open_read(path) as handle:
        return handle.read(limit)


def open_store(target: TargetSettings) -> Store:
    """Connect to the configured target (SFTP connections verify the host key)."""
    from zfs_offsite.store.local import LocalStore
    from zfs_offsite.store.sftp import SftpStore

    url = target.parsed
    if url.scheme == "file":
        return LocalStore(Path(url.path))
    return SftpStore(target.endpoint(), url.path, openssh_client=target.uses_openssh_client)
