"""Stream `zfs send` → compress → (encrypt) → hash → store, with no temporary file.

A reader thread pulls the send stream, compresses and hashes it; the calling
thread writes to the store. A bounded queue between them keeps memory flat
whatever the stream size. The pipeline makes no decisions: it runs what the
plan says into a partial file of this attempt's own and checks every end
(send exit status, stream end record, compressor end, every write
acknowledged and flushed, byte counts). Moving the file to its final name is
the completion protocol's step (`archive/commit.py`), not this one.

With recipients, the compressed stream is age-encrypted before it is hashed:
the checksum covers the stored bytes, so verify needs no key. The compressor's
(and so the encryptor's) end is written only after the send exited 0 with its
END record: a failed send must never leave a well-formed short file behind.

A resumable upload (`Resumable`, from the backup job) records a checkpoint
per 64 MiB of stored bytes once they are durable, and continues an earlier
attempt's partial file after checking the regenerated stream against its
checkpoints chunk by chunk (`stream/checkpoints.py`, `stream/resume.py`).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import NoReturn

from zfs_offsite import cancel
from zfs_offsite.archive.recipients import Recipient
from zfs_offsite.errors import (
    Cancelled,
    DiskFullError,
    IntegrityError,
    SendError,
    StoreError,
    ZfsOffsiteError,
)
from zfs_offsite.remote.store import (
    Flush,
    Store,
    Writer,
    disk_full,
    new_attempt,
    open_stream,
    remove_quietly,
    resumes_uploads,
)
from zfs_offsite.stream.checkpoints import StoredHash, StreamIdentity, never_reproduces
from zfs_offsite.stream.compression import Compressor
from zfs_offsite.stream.encryption import EncryptingCompressor
from zfs_offsite.stream.format import RECORD_SIZE, ends_with_end_record
from zfs_offsite.stream.limit import Limiter
from zfs_offsite.stream.progress import ProgressFn, StreamProgress
from zfs_offsite.stream.resume import CheckpointLog, ResumePoint, StoredCheck, find_resume_point
from zfs_offsite.values.partials import checkpoint_name, partial_name
from zfs_offsite.zfs.runner import Process, last_line

log = logging.getLogger(__name__)

READ_SIZE = 1024 * 1024
QUEUE_DEPTH = 8
_PERMANENT_SEND_ERRORS = ("does not exist", "not an earlier snapshot", "permission denied")

# A chunk's checkpoint waits for its flush at most this many stored bytes past its end
# (`_Attempt._record_flushed`).
FLUSH_LAG = 4 * 1024 * 1024
TICK_SECONDS = 1.0  # the writer looks at least this often: cancellation, lock heartbeat


@dataclass(frozen=True)
class StreamResult:
    """Figures of one completed upload; the bytes are in `partial`, durable, not yet committed."""

    raw_bytes: int
    stored_bytes: int
    sha256: str
    started: datetime
    finished: datetime
    partial: str = ""
    checkpoints: str = ""  # the partial's checkpoint file, if it has one (removed at commit)
    resumed_bytes: int = 0  # stored bytes an earlier attempt had sent, checked and not re-sent
    sending_started: datetime | None = None  # when bytes began to go out (after a resume's check)

    @property
    def seconds(self) -> float:
        return max((self.finished - self.started).total_seconds(), 1e-6)

    @property
    def sent_bytes(self) -> int:
        """Stored bytes this upload sent (the rest an earlier attempt had stored)."""
        return self.stored_bytes - self.resumed_bytes

    @property
    def sending_seconds(self) -> float:
        """How long bytes were being sent: a resume's check of the stored part left out."""
        since = self.sending_started or self.started
        return max((self.finished - since).total_seconds(), 1e-6)


class _Producer(threading.Thread):
    """Reads the send stream, compresses and hashes it, and queues the output.

    The queue holds `(piece, prefix_sha256)`: pieces of stored bytes that never
    cross a checkpoint chunk's end, the piece that ends one with the sha256 of
    all stored bytes up to there (`StoredHash`; None without checkpoints). The
    stored bytes are hashed once, here, for the sidecar and the checkpoints alike.
    """

    def __init__(
        self,
        process: Process,
        compressor: Compressor,
        out: queue.Queue,
        chunk: int | None = None,
    ) -> None:
        super().__init__(name="zfs-offsite-producer", daemon=True)
        self.process = process
        self.compressor = compressor
        self.out = out
        self.abort = threading.Event()
        self.hasher = StoredHash(chunk)
        self.raw_bytes = 0
        self.tail = b""
        self.error: BaseException | None = None

    @property
    def stored_bytes(self) -> int:
        return self.hasher.offset

    def _emit(self, data: bytes) -> None:
        for item in self.hasher.split(data):
            while not self.abort.is_set():
                try:
                    self.out.put(item, timeout=0.5)
                    break
                except queue.Full:
                    continue

    def run(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        try:
            while not self.abort.is_set():
                chunk = stdout.read(READ_SIZE)
                if not chunk:
                    break
                self.raw_bytes += len(chunk)
                # Only the last record matters (the END check): never copy the whole chunk.
                self.tail = (self.tail + chunk[-RECORD_SIZE:])[-RECORD_SIZE:]
                self._emit(self.compressor.compress(chunk))
            if not self.abort.is_set():
                self._check_send()
                self._emit(self.compressor.finish())
        except BaseException as exc:
            self.error = exc
        finally:
            self.out.put(None)

    def _check_send(self) -> None:
        """Before the compressed (or encrypted) stream is closed: the send ended well."""
        returncode = self.process.wait()
        if returncode != 0:
            raise _send_failure(self.process, returncode)
        if not ends_with_end_record(self.tail):
            raise SendError(
                "zfs send stream ended without its END record (truncated)", retryable=True
            )


def _send_failure(process: Process, returncode: int) -> SendError:
    text = last_line(process.stderr_text())
    permanent = any(p in text.lower() for p in _PERMANENT_SEND_ERRORS)
    return SendError(f"zfs send exited {returncode}: {text}", retryable=not permanent)


@dataclass(frozen=True)
class Resumable:
    """What lets an upload resume an earlier attempt's partial file (`stream/resume.py`).

    `identity` is written beside the partial with the checkpoints; `restart`
    starts the same stream again from its first byte (a new `zfs send` and a
    new compressor, same settings), for when a regenerated chunk differs.
    """

    identity: StreamIdentity
    restart: Callable[[], tuple[Process, Compressor]]


class _Mismatch(Exception):
    """An earlier attempt's bytes can be kept only up to chunk `index` (counted from 0):
    from there the regenerated stream, or the stored bytes, differ from its checkpoints,
    or (index 0) the partial cannot be continued at all. `why` says which."""

    def __init__(self, index: int, why: str) -> None:
        super().__init__(why)
        self.index = index
        self.why = why


def stream_to_store(
    process: Process,
    compressor: Compressor,
    store: Store,
    path: str,
    *,
    progress: ProgressFn | None = None,
    report: StreamProgress | None = None,
    tick: Callable[[], None] | None = None,
    expected_raw: int | None = None,
    recipients: Sequence[Recipient] = (),
    resume: Resumable | None = None,
    limit: Limiter | None = None,
) -> StreamResult:
    """Upload a send stream to a partial file beside `path`; a failure removes it (but see
    `resume`).

    `progress` gets `report` (member, file, estimate; default: just `path`) with
    the bytes so far, about once a second and once at the end.

    `tick` is called at least once a second from this thread (cancellation
    checks, the lock's heartbeat); an exception from it aborts the upload.

    With `recipients`, the stored bytes are the compressed stream encrypted to
    all of them (age); `sha256` and `stored_bytes` are those of the stored bytes.

    With `resume` (the caller holds the member's writer lock), the upload
    records checkpoints as it goes, and first looks for an earlier attempt's
    partial file of `path`: the chunks whose regenerated stream and stored bytes
    (read back) both match its checkpoints are not sent again. A failure that a
    retry can help, or a stop (Ctrl-C, SIGTERM, a Cancel), then keeps a partial
    file that has checkpoints, for the next attempt.

    `limit`, the process's bandwidth limiter, paces the stored bytes before each write.
    """
    started = datetime.now(UTC)
    report = report or StreamProgress("", path)
    try:
        point = find_resume_point(store, path, resume.identity) if resume else None
    except BaseException:
        process.kill()
        if process.stdout is not None:
            process.stdout.close()
        raise
    while True:
        try:
            return _Attempt(store, path, point, resume, recipients, expected_raw, limit).run(
                process, compressor, started, report, progress, tick
            )
        except _Mismatch as mismatch:
            assert point is not None and resume is not None
            kept = mismatch.index
            log.warning(
                "%s: %s at %d MiB (chunk %d of %d checkpoints): %s",
                path,
                mismatch.why,
                kept * point.recorded.chunk >> 20,
                kept,
                len(point.recorded.hashes),
                "uploading afresh" if kept == 0 else "sending from there",
            )
            if kept == 0:
                remove_quietly(store, point.checkpoints)
                remove_quietly(store, point.partial)
                point = None
            else:  # the stored bytes of the chunks kept were read back and matched
                point = ResumePoint(point.partial, point.recorded.keep(kept), stored_checked=True)
            process, compressor = resume.restart()


class _Attempt:
    """One pass over the stream into one partial file: fresh, or on from a resume point.

    Resuming, the regenerated stream is hashed and the partial's stored bytes are
    read back and hashed in step, and nothing is written until both matched the
    last checkpoint; then the checkpoint file and the partial are cut to that
    point and the rest is appended. Writing, a checkpoint is
    recorded at each chunk's end once its bytes are acknowledged and flushed.
    """

    def __init__(
        self,
        store: Store,
        path: str,
        point: ResumePoint | None,
        resume: Resumable | None,
        recipients: Sequence[Recipient],
        expected_raw: int | None,
        limit: Limiter | None = None,
    ) -> None:
        self.store = store
        self.limit = limit
        self.path = path
        self.recipients = recipients
        self.expected_raw = expected_raw
        self.partial = point.partial if point else partial_name(path, new_attempt())
        checkpointed = (
            resume is not None
            and never_reproduces(resume.identity) is None
            and resumes_uploads(store)
        )
        self.log = (
            CheckpointLog(store, self.partial, resume.identity, point.recorded if point else None)
            if checkpointed and resume is not None
            else None
        )
        self.expected = point.recorded.hashes if point else ()
        self.chunk = self.log.chunk if self.log else None  # checkpoints every `chunk` bytes
        self.stored = StoredCheck(store, point) if point and not point.stored_checked else None
        self.handle: Writer | None = None
        # Chunks whose flush is on its way (`Writer.sync_later`): (flush, end, sha256).
        self.flushing: deque[tuple[Flush, int, str]] = deque()
        self.sending_started: datetime | None = None
        self.files = contextlib.ExitStack()  # the open files of this attempt

    def run(
        self,
        process: Process,
        compressor: Compressor,
        started: datetime,
        report: StreamProgress,
        progress: ProgressFn | None,
        tick: Callable[[], None] | None,
    ) -> StreamResult:
        store, partial = self.store, self.partial
        chunks: queue.Queue[tuple[memoryview, str | None] | None] = queue.Queue(QUEUE_DEPTH)
        sealed = EncryptingCompressor(compressor, self.recipients) if self.recipients else None
        producer = _Producer(process, sealed or compressor, chunks, self.chunk)
        written = 0  # stored bytes so far: sent, or found on the server already
        try:
            # A clean exit closes (checked) the partial file, then the checkpoints; an error
            # aborts both. The partial is opened now, or when resuming once the checks pass.
            with contextlib.ExitStack() as self.files:
                if self.log is not None:
                    self.files.push(self._end_checkpoints)
                if self.stored is not None:
                    self.files.callback(self.stored.close)
                if not self.expected:
                    self.handle = self.files.enter_context(
                        open_stream(store, partial, self.expected_raw)
                    )
                    self.sending_started = started
                else:
                    log.info(
                        "%s: checking %d checkpoints of %s against the regenerated stream",
                        self.path,
                        len(self.expected),
                        partial,
                    )
                producer.start()
                last_report = 0.0
                while True:
                    if tick:
                        tick()
                    try:
                        item = chunks.get(timeout=TICK_SECONDS)
                    except queue.Empty:
                        continue
                    if item is None:
                        break
                    piece, digest = item
                    if self.handle is not None:
                        if self.limit is not None:  # the bandwidth limit: bytes sent
                            self.limit.take(len(piece), tick)
                        self.handle.write(piece)
                    written += len(piece)
                    if self.handle is not None:
                        self._record_flushed(written)
                    if self.handle is None and self.stored is not None:
                        self._check_stored(written, piece)
                    if digest is not None:
                        self._chunk_done(written, digest)
                    if progress and time.monotonic() - last_report > 1.0:
                        last_report = time.monotonic()
                        progress(self._report(report, producer.raw_bytes, written))
                producer.join()
                if producer.error is not None:
                    raise producer.error
                self._record_flushed(written, wait=True)
                returncode = process.wait()
                if returncode != 0:
                    raise _send_failure(process, returncode)
                if not ends_with_end_record(producer.tail):
                    raise SendError(
                        "zfs send stream ended without its END record (truncated)", retryable=True
                    )
                if self.handle is None:  # the stream ended inside the checkpoints: not the same
                    assert self.chunk is not None
                    why = "the regenerated stream ends before the last checkpoint"
                    raise _Mismatch(written // self.chunk, why)
            _check_stored_size(store, partial, written, producer.stored_bytes)
        except BaseException as exc:
            producer.abort.set()
            if sealed is not None:
                sealed.abort()  # its reader raises: no well-formed short file
            process.kill()
            _drain(chunks)
            if producer.ident is not None:  # the store may fail before the producer starts
                producer.join(timeout=10)
            # zfs-fuse writes the stream from its daemon: only a closed pipe ends that send.
            if process.stdout is not None:
                process.stdout.close()
            if isinstance(exc, _Mismatch):
                raise  # the caller starts the stream again; the stored bytes stay
            self._fail(exc, written, producer.raw_bytes)
        if progress:
            progress(self._report(report, producer.raw_bytes, written))
        return StreamResult(
            raw_bytes=producer.raw_bytes,
            stored_bytes=written,
            sha256=producer.hasher.hexdigest(),
            started=started,
            finished=datetime.now(UTC),
            partial=partial,
            checkpoints=self.log.path if self.log and self.log.exists else "",
            resumed_bytes=self.kept_bytes,
            sending_started=self.sending_started,
        )

    def _report(self, report: StreamProgress, raw: int, stored: int) -> StreamProgress:
        """Progress so far: checking an earlier attempt's bytes, or sending (after some)."""
        checking = self.handle is None
        resumed = 0 if checking else self.kept_bytes
        return replace(report.at(raw, stored), checking=checking, resumed_bytes=resumed)

    @property
    def kept_bytes(self) -> int:
        """Stored bytes of an earlier attempt this one continues (0 for a fresh upload)."""
        return len(self.expected) * self.chunk if self.chunk else 0

    def _chunk_done(self, end: int, digest: str) -> None:
        """The stored bytes up to `end` (a chunk's end) hash to `digest`: check that against
        the checkpoint, or record one."""
        assert self.chunk is not None and self.log is not None
        index = end // self.chunk - 1
        if self.handle is not None:
            self.flushing.append((self.handle.sync_later(), end, digest))
            self._record_flushed(end)  # a writer that synced at once: recorded now
            return
        if digest != self.expected[index]:
            raise _Mismatch(index, "the regenerated stream differs from the checkpoints")
        if index + 1 == len(self.expected):
            try:
                self.log.continue_kept()
                self.handle = self.files.enter_context(self.store.open_append(self.partial, end))
            except ZfsOffsiteError as exc:
                if exc.retryable or isinstance(exc, DiskFullError):
                    raise
                raise _Mismatch(
                    0, f"the earlier attempt's files cannot be continued ({exc})"
                ) from exc
            self.sending_started = datetime.now(UTC)
            log.info(
                "%s: resuming %s: the first %d MiB are stored and match the regenerated "
                "stream; sending from there",
                self.path,
                self.partial,
                end >> 20,
            )

    def _record_flushed(self, written: int, *, wait: bool = False) -> None:
        """Record the checkpoints of the chunks whose flush has come back, in order.

        A checkpoint is written only once the bytes it names are durable. Meanwhile
        the next bytes go out, so the server is never left idle while this process
        waits for a flush; but at most `FLUSH_LAG` bytes (all of them with `wait`):
        a cut shortly after a chunk's end must still find that chunk's checkpoint."""
        while self.flushing:
            flush, end, digest = self.flushing[0]
            if not flush.done():
                if not wait and written - end < FLUSH_LAG:
                    return
                flush.wait()
            assert self.log is not None
            self.flushing.popleft()
            self.log.record(end, digest)

    def _check_stored(self, upto: int, piece: memoryview) -> None:
        """The partial's stored bytes up to `upto` (the regenerated stream's ending with
        `piece`) match the checkpoints, or _Mismatch."""
        assert self.stored is not None
        try:
            why = self.stored.advance(upto, piece)
        except FileNotFoundError:
            why = "the earlier attempt's partial is gone"
        except ZfsOffsiteError as exc:
            if exc.retryable:
                raise
            raise _Mismatch(
                0, f"the earlier attempt's partial cannot be read back ({exc})"
            ) from exc
        if why is not None:
            raise _Mismatch(self.stored.matched, why)

    def _end_checkpoints(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> bool:
        assert self.log is not None
        if kind is None:
            self.log.close()
        else:
            self.log.abort()
        return False

    def _fail(self, exc: BaseException, written: int, raw: int) -> NoReturn:
        """Remove what this attempt wrote, or keep it for the next attempt to resume, and raise.

        A partial with checkpoints is kept after a failure a retry can help and after a
        stop (Ctrl-C, SIGTERM, a Cancel: a reboot must not cost a long full its progress);
        a full disk or a permanent error removes it. It stays a `.partial`, never counted.
        """
        store, partial, path = self.store, self.partial, self.path
        retryable = (
            exc.retryable if isinstance(exc, ZfsOffsiteError) else isinstance(exc, Exception)
        )
        stopped = cancel.requested() or isinstance(exc, KeyboardInterrupt | Cancelled)
        resumable = self.log is not None and self.log.recorded > 0
        if resumable and (retryable or stopped) and not isinstance(exc, DiskFullError):
            assert self.log is not None
            log.warning(
                "%s: %s kept for the next %s to resume (%d checkpoints, %d MiB)",
                path,
                partial,
                "run" if stopped else "attempt",
                self.log.recorded,
                self.log.recorded * self.log.chunk >> 20,
            )
        else:
            stored = _size_quietly(store, partial) if isinstance(exc, DiskFullError) else 0
            remove_quietly(store, checkpoint_name(partial))
            remove_quietly(store, partial)
            if isinstance(exc, DiskFullError):
                needed = _needed(stored, written, raw, self.expected_raw)
                raise disk_full(store, exc, path, needed=needed) from exc
        if isinstance(exc, ZfsOffsiteError | KeyboardInterrupt):
            raise exc
        raise StoreError(f"upload of {path} failed: {exc}") from exc


def _size_quietly(store: Store, path: str) -> int:
    try:
        entry = store.stat(path)
    except ZfsOffsiteError:
        return 0
    return entry.size if entry else 0


def _needed(stored: int, written: int, raw: int, expected_raw: int | None) -> str:
    """What the whole file needs: from `zfs send -nP`'s estimate where there is one."""
    if expected_raw and raw:
        return f"about {expected_raw * written / raw / 1e6:.0f} MB needed"
    return f"more than the {stored / 1e6:.0f} MB that fitted needed"


def _check_stored_size(store: Store, partial: str, written: int, produced: int) -> None:
    entry = store.stat(partial)
    if entry is None or entry.size != written or written != produced:
        size = "missing" if entry is None else f"{entry.size} bytes"
        raise IntegrityError(
            f"{partial} holds {size} on the server, {written} were written, {produced} produced"
        )


def _drain(chunks: queue.Queue) -> None:
    try:
        while True:
            chunks.get_nowait()
    except queue.Empty:
        pass
