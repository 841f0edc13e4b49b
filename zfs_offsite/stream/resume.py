"""A resumable upload's files on the store: find an earlier attempt's partial, keep checkpoints.

Called only under the member's writer lock (`archive/lock.py`): the partial
files of the file being written are then dead attempts of this writer (a task
retry) or of a run whose lock was judged dead. The newest one whose
checkpoints fit the stream is continued; the others of that file are removed.
Partial files of other backup files are left to prune, as before.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from zfs_offsite.errors import ZfsOffsiteError
from zfs_offsite.remote.store import (
    PartsCheck,
    Store,
    Writer,
    continues_at,
    parts_check,
    remove_quietly,
    resumes_uploads,
)
from zfs_offsite.stream.checkpoints import (
    CHUNK_BYTES,
    Checkpoints,
    StoredHash,
    StreamIdentity,
    checkpoint_line,
    header_line,
    never_reproduces,
    parse_checkpoints,
    why_not_resume,
)
from zfs_offsite.values.entries import StoreEntry
from zfs_offsite.values.partials import checkpoint_name, split_partial

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResumePoint:
    """An earlier attempt's partial file and the checkpoints a retry may skip over.

    `stored_checked`: the partial's bytes up to the last of `recorded` were already
    read back and matched (a second pass after a mismatch need not read them again).
    """

    partial: str
    recorded: Checkpoints
    stored_checked: bool = False

    @property
    def checkpoints(self) -> str:
        return checkpoint_name(self.partial)

    @property
    def offset(self) -> int:
        """Where sending goes on if every recorded chunk comes out the same again."""
        return len(self.recorded.hashes) * self.recorded.chunk


def attempts_of(entries: Iterable[StoreEntry], filename: str) -> list[StoreEntry]:
    """The partial files of `filename` among `entries` (not their checkpoints), newest first."""
    return sorted(
        (e for e in entries if (split_partial(e.name) or ("",))[0] == filename),
        key=lambda e: e.mtime,
        reverse=True,
    )


def find_resume_point(store: Store, path: str, identity: StreamIdentity) -> ResumePoint | None:
    """The newest partial of `path` worth resuming; every other partial of `path` is removed."""
    directory, filename = posixpath.split(path)
    entries = {e.name: e for e in store.listdir(directory)}
    attempts = attempts_of(entries.values(), filename)
    chosen: ResumePoint | None = None
    for entry in attempts:
        partial = posixpath.join(directory, entry.name)
        if chosen is None and not entry.is_dir and not entry.is_symlink:
            checkpoints = checkpoint_name(entry.name)
            why, point = _judge(store, partial, entry.size, entries.get(checkpoints), identity)
            if point is not None:
                chosen = point
                continue
            log.info("%s: earlier attempt %s not resumed: %s", path, entry.name, why)
        remove_quietly(store, checkpoint_name(partial))  # checkpoints first: never more of them
        remove_quietly(store, partial)  # than the partial holds bytes for
    return chosen


def _judge(
    store: Store,
    partial: str,
    size: int,
    checkpoints: StoreEntry | None,
    identity: StreamIdentity,
) -> tuple[str, ResumePoint | None]:
    """Why the partial cannot be resumed, or the point to resume it from."""
    if why := never_reproduces(identity):
        return why, None  # said up front: no checkpoint file is read, no stream hashed
    if not resumes_uploads(store):
        return "this store cannot continue an upload yet (it starts afresh)", None
    if checkpoints is None:
        return "it has no checkpoints (it stopped before the first 64 MiB)", None
    if checkpoints.is_symlink or checkpoints.is_dir:
        return "its checkpoint file is a link or a directory (never followed)", None
    try:
        data = b"".join(store.read_chunks(checkpoint_name(partial)))
    except (OSError, ZfsOffsiteError) as exc:
        return f"its checkpoints are unreadable ({exc})", None
    recorded = parse_checkpoints(data)
    if recorded is None:
        return "its checkpoint file is not one this version writes", None
    if recorded.chunk != CHUNK_BYTES:
        return f"its checkpoints are {recorded.chunk} bytes apart, not {CHUNK_BYTES}", None
    if why := why_not_resume(recorded.identity, identity):
        return f"the stream is not the same ({why})", None
    if not recorded.hashes:
        return "no checkpoint was recorded", None
    usable = recorded.usable(size)
    if usable == 0:
        return f"it holds {size} bytes, less than its first checkpoint's {recorded.chunk}", None
    try:
        continues = continues_at(store, partial)
    except (OSError, ZfsOffsiteError) as exc:
        return f"its stored parts are unreadable ({exc})", None
    while usable and not continues(usable * recorded.chunk):
        usable -= 1  # inside a stored part larger than a chunk: back to where one ends
    if usable == 0:
        return "none of its checkpoints ends where a stored part ends", None
    return "", ResumePoint(partial, recorded.keep(usable))


class StoredCheck:
    """Reads an earlier attempt's partial file back and checks its bytes against the
    checkpoints, as far as the regenerated stream has come: a partial damaged on the
    server between the attempts must never be continued into a file that looks complete.

    The read is a download, never paced by the upload limit; it runs in the uploading
    thread in step with the regenerated stream, so the check takes about as long as
    the slower of the two.

    A store that cannot read an unfinished upload back (S3) checks it its own way
    (`remote.store.parts_check`): it is fed the regenerated bytes and compares each
    stored part's checksum with theirs; the checkpoints' sha256 chain is then checked
    against the regenerated stream only (`stream/upload.py`).
    """

    def __init__(self, store: Store, point: ResumePoint) -> None:
        self._store = store
        self._point = point
        self._hash = StoredHash(point.recorded.chunk)
        self._chunks: Iterator[bytes | bytearray] | None = None
        self._parts: PartsCheck | None = None
        self._asked = False  # whether the store was asked for its own check
        self.matched = 0  # leading checkpoints whose stored bytes were read and match

    def advance(self, offset: int, data: bytes | memoryview = b"") -> str | None:
        """Check the stored bytes up to `offset` (at most the last checkpoint's end):
        None, or why they cannot be kept from chunk `matched` on. `data` is the
        regenerated stream's bytes that end at `offset` (for a store's own check)."""
        end = self._point.offset
        if not self._asked:
            self._asked = True
            self._parts = parts_check(self._store, self._point.partial)
        if self._parts is not None:
            start = offset - len(data)
            why = self._parts.feed(memoryview(data)[: max(0, end - start)])
            self.matched = min(
                self._parts.matched // self._point.recorded.chunk, len(self._point.recorded.hashes)
            )
            return why
        offset = min(offset, end)
        if self._chunks is None:
            self._chunks = self._store.read_chunks(self._point.partial)
        while self._hash.offset < offset:
            block = next(self._chunks, None)
            if block is None:
                return "the earlier attempt's partial is shorter than its checkpoints"
            for _, digest in self._hash.split(memoryview(block)[: end - self._hash.offset]):
                if digest is None:
                    continue
                if digest != self._point.recorded.hashes[self.matched]:
                    return "the stored bytes differ from the checkpoints (damaged on the server)"
                self.matched += 1
        return None

    def close(self) -> None:
        if self._chunks is not None and hasattr(self._chunks, "close"):
            self._chunks.close()


class CheckpointLog:
    """Appends one checkpoint per chunk to `<partial>.ckpt.partial`, each after its bytes
    are durable; the file is opened at the first checkpoint, so small uploads have none."""

    def __init__(
        self, store: Store, partial: str, identity: StreamIdentity, kept: Checkpoints | None
    ) -> None:
        self.store = store
        self.path = checkpoint_name(partial)
        self.identity = identity
        self.kept = kept  # an earlier attempt's checkpoints this one continues
        self.recorded = len(kept.hashes) if kept else 0
        self._writer: Writer | None = None

    @property
    def chunk(self) -> int:
        return self.kept.chunk if self.kept else CHUNK_BYTES

    def continue_kept(self) -> None:
        """Cut the file to the kept checkpoints, durably, before the partial file is cut:
        a checkpoint must never outlive the bytes it names."""
        assert self.kept is not None and self._writer is None
        self._writer = self.store.open_append(self.path, self.kept.ends[len(self.kept.hashes)])
        self._writer.sync()

    def record(self, end: int, sha256: str) -> None:
        """The stored bytes up to `end` (hashing to `sha256`) are on stable storage: say so.

        The line's own flush is not waited for (`sync_later`; `close` waits): a line
        lost in a crash costs a resume one chunk, while waiting here would stall the
        upload once per chunk until the server has written everything in flight."""
        if self._writer is None:
            self._writer = self.store.open_write(self.path)
            self._writer.write(header_line(self.identity, self.chunk))
        self._writer.write(checkpoint_line(end, sha256))
        self._writer.sync_later()
        self.recorded += 1

    @property
    def exists(self) -> bool:
        return self.kept is not None or self._writer is not None

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
