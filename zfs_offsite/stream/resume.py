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
from dataclasses import dataclass

from zfs_offsite.errors import ZfsOffsiteError
from zfs_offsite.remote.entries import StoreEntry
from zfs_offsite.remote.partials import checkpoint_name, split_partial
from zfs_offsite.remote.store import Store, Writer, remove_quietly
from zfs_offsite.stream.checkpoints import (
    CHUNK_BYTES,
    Checkpoints,
    StreamIdentity,
    checkpoint_line,
    header_line,
    never_reproduces,
    parse_checkpoints,
    why_not_resume,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResumePoint:
    """An earlier attempt's partial file and the checkpoints a retry may skip over."""

    partial: str
    recorded: Checkpoints

    @property
    def checkpoints(self) -> str:
        return checkpoint_name(self.partial)

    @property
    def offset(self) -> int:
        """Where sending goes on if every recorded chunk comes out the same again."""
        return len(self.recorded.hashes) * self.recorded.chunk


def find_resume_point(store: Store, path: str, identity: StreamIdentity) -> ResumePoint | None:
    """The newest partial of `path` worth resuming; every other partial of `path` is removed."""
    directory, filename = posixpath.split(path)
    entries = {e.name: e for e in store.listdir(directory)}
    attempts = sorted(
        (e for name, e in entries.items() if (split_partial(name) or ("",))[0] == filename),
        key=lambda e: e.mtime,
        reverse=True,
    )
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
    if checkpoints is None:
        return "it has no checkpoints (it stopped before the first 64 MiB)", None
    try:
        data = b"".join(store.read_chunks(checkpoint_name(partial)))
    except (OSError, ZfsOffsiteError) as exc:
        return f"its checkpoints are unreadable ({exc})", None
    recorded = parse_checkpoints(data)
    if recorded is None:
        return "its checkpoint file is not one this version writes", None
    if why := why_not_resume(recorded.identity, identity):
        return f"the stream is not the same ({why})", None
    usable = recorded.usable(size)
    if usable == 0:
        return "no checkpoint was recorded", None
    return "", ResumePoint(partial, recorded.keep(usable))


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
        """The stored bytes up to `end` (hashing to `sha256`) are on stable storage: say so."""
        if self._writer is None:
            self._writer = self.store.open_write(self.path)
            self._writer.write(header_line(self.identity, self.chunk))
        self._writer.write(checkpoint_line(end, sha256))
        self._writer.sync()
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
