"""A local directory as the backup target (embedded default, USB disks, tests)."""

from __future__ import annotations

import contextlib
import errno
import os
import stat as stat_module
from collections.abc import Iterator
from pathlib import Path

from zfs_offsite.errors import DiskFullError, PermanentError, StoreError
from zfs_offsite.remote.entries import Space, StoreEntry
from zfs_offsite.remote.store import (
    PRIVATE_UMASK,
    ReadHandle,
    WriterBase,
    root_missing,
    short_file,
)

READ_CHUNK = 1024 * 1024
_FULL = (errno.ENOSPC, errno.EDQUOT)


class LocalStore:
    """Files below `root`; fsync'd so a completed backup survives a crash."""

    def __init__(self, root: Path, *, umask: int = PRIVATE_UMASK) -> None:
        self.root = root
        self.description = f"file://{root}"
        self.file_mode = 0o666 & ~umask  # exact: set with fchmod, whatever the process umask
        self.dir_mode = 0o777 & ~umask

    def _path(self, path: str) -> Path:
        return self.root / path

    def listdir(self, path: str) -> list[StoreEntry]:
        directory = self._path(path)
        if not directory.is_dir():
            return []
        entries = [_entry(child.name, child.lstat()) for child in directory.iterdir()]
        return sorted(entries, key=lambda e: e.name)

    def stat(self, path: str) -> StoreEntry | None:
        target = self._path(path)
        try:
            info = target.lstat()
        except FileNotFoundError:
            return None
        return _entry(target.name, info)

    def makedirs(self, path: str) -> None:
        """Directories below the root; the root itself must exist (see `create_root`)."""
        if not self.root.is_dir():
            raise root_missing(self.description)
        self._mkdirs(self._path(path), self.root)

    def create_root(self) -> None:
        self._mkdirs(self.root, Path(self.root.anchor))

    def _mkdirs(self, target: Path, base: Path) -> None:
        """Create `target` and its missing parents below `base`, each with the private mode."""
        missing = []
        current = target
        while current != base and not current.exists():
            missing.append(current)
            current = current.parent
        for directory in reversed(missing):
            try:
                directory.mkdir()
                os.chmod(directory, self.dir_mode)
            except FileExistsError:
                continue
            except OSError as exc:
                raise self._error(f"create {directory}", exc) from exc

    def open_write(self, path: str) -> _SyncedFile:
        target = self._path(path)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.file_mode)
        except FileExistsError:
            raise
        except OSError as exc:
            raise self._error(f"create {target}", exc) from exc
        os.fchmod(fd, self.file_mode)
        return _SyncedFile(self, target, fd)

    def open_append(self, path: str, offset: int) -> _SyncedFile:
        target = self._path(path)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_NOFOLLOW)  # a link is never written through
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise self._error(f"open {target}", exc) from exc
        try:
            size = os.fstat(fd).st_size
            if size < offset:
                raise short_file(str(target), size, offset)
            os.ftruncate(fd, offset)
            os.lseek(fd, offset, os.SEEK_SET)
        except BaseException as exc:
            os.close(fd)
            if isinstance(exc, OSError):
                raise self._error(f"truncate {target}", exc) from exc
            raise
        return _SyncedFile(self, target, fd)

    def open_read(self, path: str) -> ReadHandle:
        return self._path(path).open("rb")

    def read_chunks(self, path: str) -> Iterator[bytes]:
        try:
            with self._path(path).open("rb") as handle:
                while chunk := handle.read(READ_CHUNK):
                    yield chunk
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise StoreError(f"cannot read {self._path(path)}: {exc.strerror}") from exc

    def rename(self, source: str, destination: str) -> None:
        os.replace(self._path(source), self._path(destination))
        _fsync_dir(self._path(destination).parent)

    def touch(self, path: str) -> None:
        os.utime(self._path(path))

    def space(self, path: str) -> Space | None:
        try:
            info = os.statvfs(self._path(path))
        except OSError:
            return None
        return Space(info.f_bavail * info.f_frsize, info.f_namemax)

    def remove(self, path: str) -> None:
        self._path(path).unlink(missing_ok=True)

    def close(self) -> None:
        """Nothing to release."""

    def _error(self, action: str, exc: OSError) -> Exception:
        if exc.errno in _FULL:
            space = self.space("")
            free = space.free_bytes if space else None
            return DiskFullError(f"{action}: backup server disk is full", free_bytes=free)
        if isinstance(exc, PermissionError):
            why = exc.strerror or "permission denied"
            return PermanentError(f"{action}: {why} (permission denied on the backup target)")
        if exc.errno == errno.EROFS:
            return PermanentError(f"{action}: the backup target is a read-only file system")
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
            return self._handle.write(data)
        except OSError as exc:
            raise self._store._error(f"write {self._path}", exc) from exc

    def sync(self) -> None:
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as exc:
            raise self._store._error(f"write {self._path}", exc) from exc

    @property
    def closed(self) -> bool:
        return self._handle.closed

    def _release(self) -> None:
        self._handle.close()

    def abort(self) -> None:
        # Buffered bytes that cannot be written do not matter: the file is removed.
        with contextlib.suppress(OSError):
            self._handle.close()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
