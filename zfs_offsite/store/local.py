"""A local directory as the backup target (embedded default, USB disks, tests)."""

from __future__ import annotations

import os
import stat as stat_module
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from zfs_offsite.errors import StoreError
from zfs_offsite.store import StoreEntry

READ_CHUNK = 1024 * 1024


class LocalStore:
    """Files below `root`; fsync'd so a completed backup survives a crash."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = f"file://{root}"

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
        try:
            self._path(path).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {self._path(path)}: {exc.strerror}") from exc

    def open_write(self, path: str) -> BinaryIO:
        return _SyncedFile(self._path(path))  # type: ignore[return-value]

    def open_read(self, path: str) -> BinaryIO:
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

    def remove(self, path: str) -> None:
        self._path(path).unlink(missing_ok=True)

    def close(self) -> None:
        """Nothing to release."""


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


class _SyncedFile:
    """A binary file that is fsync'd on close."""

    def __init__(self, path: Path) -> None:
        self._handle = path.open("wb")

    def write(self, data: bytes | memoryview) -> int:
        return self._handle.write(data)

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()

    def __enter__(self) -> _SyncedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
