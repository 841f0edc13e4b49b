"""Read a stored backup file back: checksum while reading, decrypt, decompress to the end.

Shared by restore, verify and the restore drill, so all three judge a file the
same way: size and sha256 against its sidecar (seed-era files have none),
an age file that decrypts to its end (`.age`, with an identity), compressed
data that decompresses to its end, and a send stream that ends with its END
record. The checksum covers the stored bytes, so it needs no key.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from zfs_offsite import cancel
from zfs_offsite.archive.model import ArchiveFile
from zfs_offsite.errors import IntegrityError
from zfs_offsite.keys.identities import Identity, IdentityError
from zfs_offsite.remote.store import Store
from zfs_offsite.stream.compression import decompressor
from zfs_offsite.stream.encryption import HEADER_BYTES, check_identity, decrypted_chunks
from zfs_offsite.stream.format import RECORD_SIZE, end_problem, last_snapshot_guid

T = TypeVar("T")

READ_AHEAD = 4  # chunks (about 1 MiB each) read ahead of decompression
DECOMPRESS_SLICE = 256 * 1024  # compressed bytes per decompress call


@dataclass
class ReadStats:
    """What was read so far: stored (compressed) and raw (send stream) bytes."""

    stored_bytes: int = 0
    raw_bytes: int = 0
    sha256: str = ""
    snapshot_guid: int | None = None  # the last snapshot the stream's END records name


def checked_chunks(
    store: Store, member: str, file: ArchiveFile, stats: ReadStats
) -> Iterator[bytes | bytearray]:
    """The stored bytes; at the end, IntegrityError if size or sha256 differ from the sidecar."""
    digest = hashlib.sha256()
    for chunk in store.read_chunks(f"{member}/{file.filename}"):
        cancel.check()  # restore, verify and drill stop on Ctrl-C / Cancel too
        digest.update(chunk)
        stats.stored_bytes += len(chunk)
        yield chunk
    stats.sha256 = digest.hexdigest()
    if file.sidecar is None:
        return
    if stats.stored_bytes != file.sidecar.stored_bytes:
        raise IntegrityError(
            f"{member}/{file.filename}: {stats.stored_bytes} bytes stored, the sidecar "
            f"records {file.sidecar.stored_bytes} (truncated or appended)"
        )
    if stats.sha256 != file.sidecar.sha256:
        raise IntegrityError(
            f"{member}/{file.filename}: sha256 {stats.sha256} does not match the sidecar's "
            f"{file.sidecar.sha256} (the file is corrupt)"
        )


def read_ahead(chunks: Iterator[T], depth: int = READ_AHEAD) -> Iterator[T]:
    """Run `chunks` (network reads, hashing) in a thread of its own, `depth` chunks ahead.

    Decompression and the pipe to `zfs receive` then overlap with the reads;
    an error in the thread is raised here, in order, after the chunks before it.
    """
    handoff: queue.Queue[T | BaseException | None] = queue.Queue(depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in chunks:
                if stop.is_set():
                    return
                handoff.put(chunk)
            handoff.put(None)
        except BaseException as exc:  # handed to the consumer
            handoff.put(exc)
        finally:
            if isinstance(chunks, Generator):
                chunks.close()  # stops nested read-ahead threads and closes the remote file

    thread = threading.Thread(target=produce, name="zfs-offsite-read", daemon=True)
    thread.start()
    try:
        while (item := handoff.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(queue.Empty):
                handoff.get(timeout=0.1)
        thread.join()


def recipients_of(file: ArchiveFile) -> tuple[str, ...]:
    """The fingerprints an encrypted file's sidecar records (for error messages)."""
    return file.sidecar.recipients if file.sidecar is not None else ()


def no_identity(member: str, file: ArchiveFile) -> IdentityError:
    shown = f" (its recipients: {', '.join(recipients_of(file))})" if recipients_of(file) else ""
    return IdentityError(
        f"{member}/{file.filename} is encrypted and setting encryption.identity_file is unset: "
        f"name the identity (secret key) of one of its recipients{shown}"
    )


def check_can_decrypt(
    store: Store,
    member: str,
    files: Sequence[ArchiveFile],
    identities: Sequence[Identity] | None,
) -> None:
    """IdentityError unless `identities` open every encrypted file of `files`.

    Reads only the start of each file (the age header), so a restore or drill
    fails in one clear line before anything is received.
    """
    for file in files:
        if not file.name.encrypted:
            continue
        if identities is None:
            raise no_identity(member, file)
        path = f"{member}/{file.filename}"
        head = bytearray()
        with store.open_read(path) as handle:
            while len(head) < HEADER_BYTES and (data := handle.read(HEADER_BYTES - len(head))):
                head += data
        check_identity(bytes(head), identities, path, recipients_of(file))


def stream_chunks(
    store: Store,
    member: str,
    file: ArchiveFile,
    stats: ReadStats,
    identities: Sequence[Identity] | None = None,
) -> Iterator[bytes]:
    """The send stream inside a stored file, every check applied by the time it ends.

    An encrypted file needs `identities` (IdentityError without them).
    """
    decompress = decompressor(file.name.compression)
    head = tail = b""
    stored: Iterator[bytes | bytearray] = read_ahead(checked_chunks(store, member, file, stats))
    if file.name.encrypted:
        if identities is None:
            raise no_identity(member, file)
        where = f"{member}/{file.filename}"
        stored = decrypted_chunks(stored, identities, where, recipients_of(file))
    try:
        for chunk in stored:
            view = memoryview(chunk)
            # Small slices bound each output, however well the data compressed.
            for start in range(0, len(view), DECOMPRESS_SLICE):
                out = decompress.decompress(view[start : start + DECOMPRESS_SLICE])
                if out:
                    stats.raw_bytes += len(out)
                    if len(head) < RECORD_SIZE:
                        head += out[: RECORD_SIZE - len(head)]
                    tail = (tail + out[-2 * RECORD_SIZE :])[-2 * RECORD_SIZE :]
                    yield out
        decompress.finish()
    except IntegrityError as exc:
        if file.filename in str(exc):
            raise
        raise IntegrityError(f"{member}/{file.filename}: {exc}") from exc
    if (problem := end_problem(head, tail)) is not None:
        raise IntegrityError(f"{member}/{file.filename}: {problem}")
    stats.snapshot_guid = last_snapshot_guid(head, tail)
    if file.sidecar is not None and stats.raw_bytes != file.sidecar.raw_bytes:
        raise IntegrityError(
            f"{member}/{file.filename}: decompresses to {stats.raw_bytes} bytes, the sidecar "
            f"records {file.sidecar.raw_bytes}"
        )
