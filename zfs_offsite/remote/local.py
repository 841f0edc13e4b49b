"""A local directory as the backup target (embedded default, USB disks, tests).

Every call that can block in the kernel on a frozen or hung disk runs under a
`Deadline` of `target.timeout` seconds (`remote/deadline.py`): a disk that
makes no progress fails the attempt (retryable) instead of holding it forever.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat as stat_module
from collections.abc import Iterator
from pathlib import Path

from zfs_offsite.errors import DiskFullError, PermanentError, ReadOnlyError, StoreError
from zfs_offsite.remote.deadline import Deadline
from zfs_offsite.remote.store import (
    PRIVATE_UMASK,
    ReadHandle,
    WriterBase,
    root_missing,
    short_file,
)
from zfs_offsite.values.entries import Space, StoreEntry

READ_CHUNK = 1024 * 1024
_FULL = (errno.ENOSPC, errno.EDQUOT)


class LocalStore:
    """Files below `root`; fsync'd so a completed backup survives a crash."""

    def __init__(
        self, root: Path, timeout: float | None = None, *, umask: int = PRIVATE_UMASK
    ) -> None:
        self.root = root
        self.description = f"file://{root}"
        self._deadline = Deadline(timeout, self.description)  # None: calls are not bounded
        self.file_mode = 0o666 & ~umask  # exact: set with fchmod, whatever the process umask
        self.dir_mode = 0o777 & ~umask

    def _path(self, path: str) -> Path:
        return self.root / path

    def listdir(self, path: str) -> list[StoreEntry]:
        directory = self._path(path)

        def entries() -> list[StoreEntry]:
            if not directory.is_dir():
                return []
            return [_entry(child.name, child.lstat()) for child in directory.iterdir()]

        return sorted(self._deadline.run(f"listing {directory}", entries), key=lambda e: e.name)

    def stat(self, path: str) -> StoreEntry | None:
        target = self._path(path)
        try:
            info = self._deadline.run(f"looking at {target}", target.lstat)
        except FileNotFoundError:
            return None
        return _entry(target.name, info)

    def makedirs(self, path: str) -> None:
        """Directories below the root; the root itself must exist (see `create_root`)."""
        if not self._deadline.run(f"reading {self.root}", self.root.is_dir):
            raise root_missing(self.description)
        self._mkdirs(self._path(path), self.root)

    def create_root(self) -> None:
        self._mkdirs(self.root, Path(self.root.anchor))

    def _mkdirs(self, target: Path, base: Path) -> None:
        """Create `target` and its missing parents below `base`, each with the private mode."""
        missing = []
        current = target
        while current != base and not self._deadline.run(f"reading {current}", current.exists):
            missing.append(current)
            current = current.parent
        for directory in reversed(missing):

            def make(directory: Path = directory) -> None:
                directory.mkdir()
                os.chmod(directory, self.dir_mode)

            try:
                self._deadline.run(f"creating {directory}", make)
            except FileExistsError:
                continue
            except OSError as exc:
                raise self._error(f"create {directory}", exc) from exc

    def open_write(self, path: str) -> _SyncedFile:
        target = self._path(path)
        try:
            fd = self._deadline.run(
                f"creating {target}",
                lambda: os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.file_mode),
            )
        except FileExistsError:
            raise
        except OSError as exc:
            raise self._error(f"create {target}", exc) from exc
        os.fchmod(fd, self.file_mode)
        return _SyncedFile(self, target, fd)

    def open_append(self, path: str, offset: int) -> _SyncedFile:
        target = self._path(path)
        try:
            fd = self._deadline.run(  # a link is never written through
                f"opening {target}", lambda: os.open(target, os.O_WRONLY | os.O_NOFOLLOW)
            )
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise self._error(f"open {target}", exc) from exc
        try:
            size = os.fstat(fd).st_size
            if size < offset:
                raise short_file(str(target), size, offset)
            self._deadline.run(f"truncating {target}", lambda: os.ftruncate(fd, offset))
            os.lseek(fd, offset, os.SEEK_SET)
        except BaseException as exc:
            self._deadline.later(lambda: os.close(fd))
            if isinstance(exc, OSError):
                raise self._error(f"truncate {target}", exc) from exc
            raise
        return _SyncedFile(self, target, fd)

    def open_read(self, path: str) -> ReadHandle:
        target = self._path(path)
        return self._deadline.run(f"opening {target}", lambda: target.open("rb"))

    def read_chunks(self, path: str) -> Iterator[bytes]:
        target = self._path(path)
        try:
            with self._deadline.run(f"opening {target}", lambda: target.open("rb")) as handle:
                reading = f"reading {target}"
                while chunk := self._deadline.run(reading, lambda: handle.read(READ_CHUNK)):
                    yield chunk
        except FileNotFoundError:
            raise
        except PermissionError as exc:
            raise self._error(f"read {self._path(path)}", exc) from exc
        except OSError as exc:
            raise StoreError(f"cannot read {self._path(path)}: {exc.strerror}") from exc

    def rename(self, source: str, destination: str) -> None:
        src, dst = self._path(source), self._path(destination)

        def rename() -> None:
            os.replace(src, dst)
            _fsync_dir(dst.parent)

        self._deadline.run(f"renaming {src}", rename)

    def touch(self, path: str, mtime: float | None = None) -> None:
        target = self._path(path)
        times = None if mtime is None else (mtime, mtime)
        self._deadline.run(f"touching {target}", lambda: os.utime(target, times))

    def space(self, path: str) -> Space | None:
        try:
            info = os.statvfs(self._path(path))
        except OSError:
            return None
        return Space(info.f_bavail * info.f_frsize, info.f_namemax)

    def remove(self, path: str) -> None:
        target = self._path(path)
        self._deadline.run(f"removing {target}", lambda: target.unlink(missing_ok=True))

    def close(self) -> None:
        """End the helper threads of the deadline."""
        self._deadline.close()

    def _error(self, action: str, exc: OSError) -> Exception:
        if exc.errno in _FULL:
            space = self.space("")
            free = space.free_bytes if space else None
            return DiskFullError(f"{action}: backup server disk is full", free_bytes=free)
        if isinstance(exc, PermissionError):
            why = exc.strerror or "permission denied"
            return PermanentError(f"{action}: {why} (permission denied on the backup target)")
        if exc.errno == errno.EROFS:
            return ReadOnlyError.at(self.description)
        return StoreError(f"{action}: {exc.strerror or exc}")


def _entry(name: str, info: os.stat_result) -> StoreEntry:
    """An entry from lstat: a symlink is reported as one, never as what it points to."""
    mode = info.st_mode
    return StoreEntry(
        name,
        info.st_size,
        info.st_mtime,
        stat_module.S_ISDIR(mode),
        stat_module.S_ISLNK(mode),
    )


class _SyncedFile(WriterBase):
    """A new file; `close()` flushes it to disk (fsync of the file) or raises."""

    def __init__(self, store: LocalStore, path: Path, fd: int) -> None:
        self._store = store
        self._path = path
        self._handle = os.fdopen(fd, "wb")

    def write(self, data: bytes | memoryview) -> int:
        try:
            return self._store._deadline.run(
                f"writing {self._path}", lambda: self._handle.write(data)
            )
        except OSError as exc:
            raise self._store._error(f"write {self._path}", exc) from exc

    def sync(self) -> None:
        def flush() -> None:
            self._handle.flush()
            os.fsync(self._handle.fileno())

        try:
            self._store._deadline.run(f"flushing {self._path}", flush)
        except OSError as exc:
            raise self._store._error(f"write {self._path}", exc) from exc

    @property
    def closed(self) -> bool:
        return self._handle.closed

    def _release(self) -> None:
        self._store._deadline.run(f"closing {self._path}", self._handle.close)

    def abort(self) -> None:
        # Buffered bytes that cannot be written do not matter: the file is removed.
        # On a stalled disk even the close may block: it is left to a thread of its own.
        if self._store._deadline.stalled:
            self._store._deadline.later(self._handle.close)
            return
        with contextlib.suppress(OSError, StoreError):
            self._store._deadline.run(f"closing {self._path}", self._handle.close)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
