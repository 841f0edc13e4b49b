"""Remote storage behind one small protocol: a local directory, an SFTP server, or an S3
bucket (`remote/s3.py`).

Paths are relative to the target's root and use `/`. Writers create new files
only (exclusive create: no run can truncate another's bytes), and a writer's
`close()` returns only once every byte is acknowledged and on stable storage;
files reach a final name by an atomic rename (see `zfs_offsite.archive.commit`).
The one exception is a resumed upload (`stream/upload.py`): under the member's
writer lock it truncates its own earlier partial file and appends to it
(`open_append`).
"""

from __future__ import annotations

import logging
import posixpath
import secrets
from collections.abc import Callable, Iterator
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from zfs_offsite.errors import DiskFullError, IntegrityError, PermanentError
from zfs_offsite.values.entries import Space, StoreEntry
from zfs_offsite.values.partials import partial_name

log = logging.getLogger(__name__)


class Flush(Protocol):
    """A flush started by `Writer.sync_later`."""

    def done(self) -> bool:
        """True once the bytes written before it are durable; never waits. A failed
        write or flush raises here or from the writer's next call."""
        ...

    def wait(self) -> None:
        """Return once the bytes written before it are durable; raise if they cannot be."""
        ...


class _Flushed:
    """The flush of a writer that synced at once."""

    def done(self) -> bool:
        return True

    def wait(self) -> None:
        return None


FLUSHED: Flush = _Flushed()


class Writer(Protocol):
    """A new file being written; `close()` is the proof that it is durable."""

    def write(self, data: bytes | memoryview) -> int: ...

    def sync(self) -> None:
        """Wait for every write's acknowledgement and flush to stable storage; stay open.

        What was written before the call is durable when it returns (a resume
        checkpoint is recorded only after this)."""
        ...

    def sync_later(self) -> Flush:
        """Start a `sync` of what was written so far without waiting for it.

        Writing may go on meanwhile, so the server flushes one chunk while the next
        is sent (resume checkpoints); the `Flush` says when those bytes are durable."""
        ...

    def close(self) -> None:
        """Wait for every write's acknowledgement, flush to stable storage; raise on any error."""
        ...

    def abort(self) -> None:
        """Release the file without checks (the caller removes it)."""
        ...

    def __enter__(self) -> Writer: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class WriterBase:
    """The writers' rule as a context manager: a clean exit closes (checked), an error aborts."""

    @property
    def closed(self) -> bool:
        raise NotImplementedError

    def sync(self) -> None:
        raise NotImplementedError

    def sync_later(self) -> Flush:
        """A writer that cannot flush in the background syncs now (see `Writer`)."""
        self.sync()
        return FLUSHED

    def _release(self) -> None:
        """Close the file once everything written is acknowledged and flushed."""
        raise NotImplementedError

    def close(self) -> None:
        """Wait for every write and the flush (`sync`), then close; a failure aborts."""
        if self.closed:
            return
        try:
            self.sync()
        except BaseException:
            self.abort()
            raise
        self._release()

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


class Store(Protocol):
    """What the tool needs from a backup server, and nothing more."""

    description: str

    def listdir(self, path: str) -> list[StoreEntry]:
        """Entries of a directory; an empty list if it does not exist."""
        ...

    def stat(self, path: str) -> StoreEntry | None: ...
    def makedirs(self, path: str) -> None:
        """Create `path` and its parents below the root; the root must exist.

        Only `create_root` makes the root: a backup must never recreate an
        archive root that went missing (an unmounted disk) on its own."""
        ...

    def create_root(self) -> None:
        """Create the root and its missing parents (a new archive: `archive/identity.py`)."""
        ...

    def open_write(self, path: str) -> Writer:
        """A new file; FileExistsError if `path` exists (never truncates)."""
        ...

    def open_append(self, path: str, offset: int) -> Writer:
        """An existing file cut to `offset` bytes, written on from there (a resumed upload).

        FileNotFoundError if it is gone; IntegrityError if it holds fewer than
        `offset` bytes (never extended with a hole)."""
        ...

    def open_read(self, path: str) -> ReadHandle:
        """A small file (sidecars); large files go through `read_chunks`."""
        ...

    def read_chunks(self, path: str) -> Iterator[bytes | bytearray]:
        """A whole file as a stream of chunks, read ahead within bounded memory.

        A chunk may be a bytearray the store received into (no copy); each is the
        caller's to keep, never reused by the store."""
        ...

    def rename(self, source: str, destination: str) -> None:
        """Atomic rename that replaces `destination` (POSIX rename semantics)."""
        ...

    def touch(self, path: str, mtime: float | None = None) -> None:
        """Set a file's modification time to `mtime` (the lock's heartbeat, in the server's
        clock), or to now by this host's clock."""
        ...

    def space(self, path: str) -> Space | None:
        """Free space and name length limit where `path` lives; None if the server can't say."""
        ...

    def remove(self, path: str) -> None: ...
    def close(self) -> None: ...


class ReadHandle(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...
    def __enter__(self) -> ReadHandle: ...
    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> object: ...


PRIVATE_UMASK = 0o077  # the archive's files 0600, directories 0700 (target.umask)


DISK_QUESTION = "is the disk mounted?"


def root_missing(description: str) -> PermanentError:
    """Why a store refuses to create a directory under a root that is not there."""
    return PermanentError(
        f"archive root {description} is missing: {DISK_QUESTION} zfs-offsite creates "
        "an archive root only for a first backup or `zfs-offsite init`"
    )


def absent_root_question(store: Store) -> str:
    """What to ask when `store`'s root is missing or empty: by default whether the disk is
    mounted; a store with no disk says its own by `absent_root_question = "..."` (S3)."""
    return str(getattr(store, "absent_root_question", DISK_QUESTION))


def short_file(path: str, size: int, offset: int) -> IntegrityError:
    """The error of `open_append` on a file shorter than the offset to append at."""
    return IntegrityError(f"{path} holds {size} bytes, fewer than the {offset} to resume after")


def new_attempt() -> str:
    """A token naming one attempt's partial files, so attempts never share a file."""
    return secrets.token_hex(6)


def resumes_uploads(store: Store) -> bool:
    """Whether an upload to `store` keeps checkpoints and resumes from them (file stores).

    A store can say no by `resumes_uploads = False`; its upload then starts afresh each
    attempt, like an age-encrypted stream's. (S3 says yes: `remote/s3.py`.)"""
    return bool(getattr(store, "resumes_uploads", True))


class PartsCheck(Protocol):
    """A store's own check of an earlier attempt's stored bytes, fed the regenerated stream
    (`S3Store.check_parts`: each part's MD5 against its ETag)."""

    matched: int  # bytes of the leading stored pieces that matched

    def feed(self, data: bytes | memoryview) -> str | None:
        """Check these next bytes; None, or why the stored bytes from `matched` on differ."""
        ...


def parts_check(store: Store, partial: str) -> PartsCheck | None:
    """How `store` checks `partial`'s stored bytes without reading them back (an object
    store cannot read an unfinished upload), or None: read them back (file stores)."""
    check = getattr(store, "check_parts", None)
    return check(partial) if check is not None else None


def continues_at(store: Store, partial: str) -> Callable[[int], bool]:
    """Whether `partial` can be continued after its first `offset` bytes: anywhere on a
    file store; on S3 only where a stored part ends (`S3Store.continues_at`), which a
    checkpoint need not be once parts are larger than a checkpoint chunk."""
    check = getattr(store, "continues_at", None)
    if check is None:
        return lambda offset: True
    found: Callable[[int], bool] = check(partial)
    return found


def open_stream(store: Store, path: str, expected_size: int | None) -> Writer:
    """`store.open_write(path)` for a stream of about `expected_size` bytes (None: unknown).

    A store whose writes are shaped by the size (S3: the part sizes that keep a stream
    under 10,000 parts, `S3Store.open_sized`) is told it; file stores need not know."""
    sized = getattr(store, "open_sized", None)
    if sized is not None:
        writer: Writer = sized(path, expected_size)
        return writer
    return store.open_write(path)


def write_new_file(store: Store, path: str, data: bytes) -> str:
    """Write `data` to a fresh partial file beside `path`, checked and durable; its name."""
    partial = partial_name(path, new_attempt())
    try:
        with store.open_write(partial) as handle:
            handle.write(data)
        entry = store.stat(partial)
        if entry is None or entry.size != len(data):
            size = "missing" if entry is None else f"{entry.size} bytes"
            raise IntegrityError(f"{partial} holds {size} on the server, {len(data)} were written")
    except BaseException:
        remove_quietly(store, partial)
        raise
    return partial


def write_small_file(store: Store, path: str, data: bytes) -> None:
    """Write a small file atomically: a checked partial file, then rename over `path`.

    A rename that fails (a directory in `path`'s place) takes its partial with it.
    """
    partial = write_new_file(store, path, data)
    try:
        store.rename(partial, path)
    except BaseException:
        remove_quietly(store, partial)
        raise


def read_small_file(store: Store, path: str, limit: int = 1024 * 1024) -> bytes:
    with store.open_read(path) as handle:
        return handle.read(limit)


def remove_quietly(store: Store, path: str) -> None:
    """Remove a partial file; if the connection broke, it stays a partial that never counts."""
    try:
        store.remove(path)
    except Exception as exc:
        log.warning("could not remove %s (%s); it stays a .partial and never counts", path, exc)


class QuotaFullError(DiskFullError):
    """A store with no free space to ask (S3) refused a write over its quota.

    `what` names the quota, `fix` how to raise it or free room: `disk_full` keeps
    both in its one line instead of a free-space figure the store cannot give."""

    def __init__(self, message: str, *, what: str, fix: str) -> None:
        super().__init__(message, free_bytes=None)
        self.what = what
        self.fix = fix


class RetainedError(PermanentError):
    """The store refused to delete a file under retention (S3 Object Lock) until `until`."""

    def __init__(self, message: str, until: datetime | None) -> None:
        super().__init__(message)
        self.until = until


@runtime_checkable
class Retaining(Protocol):
    """A store that can keep files from deletion for a time (S3 Object Lock)."""

    def retained_until(self, path: str, now: datetime) -> datetime | None:
        """When `path` may be deleted, if that is after `now`; None if it may be now."""
        ...


def disk_full(store: Store, exc: DiskFullError, path: str, *, needed: str) -> DiskFullError:
    """The one line for a full server: the room there is now (call it after removing what
    the attempt wrote), what the file needs, and the fix."""
    if isinstance(exc, QuotaFullError):
        return QuotaFullError(
            f"{exc.what} ({needed}): {path} was not stored; {exc.fix}", what=exc.what, fix=exc.fix
        )
    space = store.space(posixpath.dirname(path))
    free = space.free_bytes if space is not None else exc.free_bytes or 0
    return DiskFullError(
        f"backup server disk is full ({free / 1e6:.0f} MB free, {needed}): {path} was not "
        "stored; free space on the backup server (e.g. `zfs-offsite prune`)",
        free_bytes=free,
    )
