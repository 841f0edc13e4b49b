"""Plain values a store answers with: directory entries and free space."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StoreEntry:
    """One directory entry on the backup server."""

    name: str
    size: int
    mtime: float
    is_dir: bool = False
    is_symlink: bool = False  # from lstat: a link is never followed, read or deleted through


@dataclass(frozen=True)
class Space:
    """Free space and the longest file name a directory's file system takes."""

    free_bytes: int
    name_max: int
    read_only: bool = False  # mounted read-only (statvfs ST_RDONLY): nothing can be written
