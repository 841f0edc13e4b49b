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
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from zfs_offsite.archive.recipients import Recipient
from zfs_offsite.errors import (
    DiskFullError,
    IntegrityError,
    SendError,
    StoreError,
    ZfsOffsiteError,
)
from zfs_offsite.remote.partials import partial_name
from zfs_offsite.remote.store import Store, disk_full, new_attempt, remove_quietly
from zfs_offsite.stream.compression import Compressor
from zfs_offsite.stream.encryption import EncryptingCompressor
from zfs_offsite.stream.format import RECORD_SIZE, ends_with_end_record
from zfs_offsite.stream.limit import Limiter
from zfs_offsite.stream.progress import ProgressFn, StreamProgress
from zfs_offsite.zfs.runner import Process, last_line

READ_SIZE = 1024 * 1024
QUEUE_DEPTH = 8
_PERMANENT_SEND_ERRORS = ("does not exist", "not an earlier snapshot", "permission denied")

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

    @property
    def seconds(self) -> float:
        return max((self.finished - self.started).total_seconds(), 1e-6)


class _Producer(threading.Thread):
    """Reads the send stream, compresses and hashes it, and queues the output."""

    def __init__(self, process: Process, compressor: Compressor, out: queue.Queue) -> None:
        super().__init__(name="zfs-offsite-producer", daemon=True)
        self.process = process
        self.compressor = compressor
        self.out = out
        self.abort = threading.Event()
        self.hasher = hashlib.sha256()
        self.raw_bytes = 0
        self.stored_bytes = 0
        self.tail = b""
        self.error: BaseException | None = None

    def _emit(self, data: bytes) -> None:
        if data:
            self.hasher.update(data)
            self.stored_bytes += len(data)
            while not self.abort.is_set():
                try:
                    self.out.put(data, timeout=0.5)
                    return
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
                self.tail = (self.tail + chunk)[-RECORD_SIZE:]
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
    limit: Limiter | None = None,
) -> StreamResult:
    """Upload a send stream to a new partial file beside `path`; on any failure it is removed.

    `progress` gets `report` (member, file, estimate; default: just `path`) with
    the bytes so far, about once a second and once at the end.

    `tick` is called at least once a second from this thread (cancellation
    checks, the lock's heartbeat); an exception from it aborts the upload.

    With `recipients`, the stored bytes are the compressed stream encrypted to
    all of them (age); `sha256` and `stored_bytes` are those of the stored bytes.

    `limit`, the process's bandwidth limiter, paces the stored bytes before each write.
    """
    started = datetime.now(UTC)
    report = report or StreamProgress("", path)
    partial = partial_name(path, new_attempt())
    chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUE_DEPTH)
    sealed = EncryptingCompressor(compressor, recipients) if recipients else None
    producer = _Producer(process, sealed or compressor, chunks)
    written = 0
    try:
        with store.open_write(partial) as handle:
            producer.start()
            last_report = 0.0
            while True:
                if tick:
                    tick()
                try:
                    chunk = chunks.get(timeout=TICK_SECONDS)
                except queue.Empty:
                    continue
                if chunk is None:
                    break
                if limit is not None:
                    limit.take(len(chunk), tick)  # the bandwidth limit: stored bytes
                handle.write(memoryview(chunk))
                written += len(chunk)
                if progress and time.monotonic() - last_report > 1.0:
                    last_report = time.monotonic()
                    progress(report.at(producer.raw_bytes, written))
            producer.join()
            if producer.error is not None:
                raise producer.error
            returncode = process.wait()
            if returncode != 0:
                raise _send_failure(process, returncode)
            if not ends_with_end_record(producer.tail):
                raise SendError(
                    "zfs send stream ended without its END record (truncated)", retryable=True
                )
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
        stored = _size_quietly(store, partial) if isinstance(exc, DiskFullError) else 0
        remove_quietly(store, partial)
        if isinstance(exc, DiskFullError):
            needed = _needed(stored, written, producer.raw_bytes, expected_raw)
            raise disk_full(store, exc, path, needed=needed) from exc
        if isinstance(exc, ZfsOffsiteError | KeyboardInterrupt):
            raise
        raise StoreError(f"upload of {path} failed: {exc}") from exc
    if progress:
        progress(report.at(producer.raw_bytes, written))
    return StreamResult(
        raw_bytes=producer.raw_bytes,
        stored_bytes=written,
        sha256=producer.hasher.hexdigest(),
        started=started,
        finished=datetime.now(UTC),
        partial=partial,
    )


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


def _drain(chunks: queue.Queue[bytes | None]) -> None:
    try:
        while True:
            chunks.get_nowait()
    except queue.Empty:
        pass
