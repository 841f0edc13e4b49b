"""age encryption of the stored stream (pyrage): the encrypting and decrypting stages.

pyrage's `encrypt_io`/`decrypt_io` are blocking calls that pull from a reader
and push to a writer, so each stage runs one of them in a thread of its own
between two bounded hand-offs. Three of pyrage's habits shape the code:

- A writer that raises on the very last flush makes `encrypt_io` return as if
  it had succeeded, with a short output: the encrypting writer only appends to
  a list, and the upload checks its own byte counts.
- A reader that returns EOF early yields a valid, short ciphertext: the reader
  returns EOF only when `finish()` says the plaintext is whole; an abort
  raises in the reader.
- A reader's exception comes back as a bare EncryptError/DecryptError message:
  the original is kept aside and raised instead.

Decrypted output is provisional until `decrypt_io` returns (a flipped byte is
found after the chunks before it were written); the restore holds back the
end of each stream until every check passed, as it does for decompression.

The identities the decrypting stage is given are loaded in keys/identities.py.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Generator, Iterator, Sequence
from typing import Any

import pyrage

from zfs_offsite.archive.recipients import Recipient
from zfs_offsite.errors import IntegrityError, ZfsOffsiteError
from zfs_offsite.keys.identities import Identity, IdentityError, identity_keys
from zfs_offsite.stream.compression import Compressor

HANDOFF_DEPTH = 4  # chunks queued into or out of a stage
POLL_SECONDS = 0.5  # how often a blocked stage looks at its abort flag
HEADER_BYTES = 64 * 1024  # read to check an identity: the age header and a first chunk
NO_MATCH = "No matching keys found"  # pyrage's DecryptError for a wrong identity
AGE_CHUNK, AGE_TAG, AGE_NONCE = 64 * 1024, 16, 16  # the age v1 payload's layout


class _Aborted(Exception):
    """Raised inside a stage's reader or writer to end pyrage's call early."""


# --- Writing: compress, then encrypt ---------------------------------------------------


class _StagedReader:
    """The file pyrage reads: chunks from `_next` (None at the end), handed out as asked."""

    def __init__(self) -> None:
        self._buffer = memoryview(b"")
        self._eof = False

    def _next(self) -> bytes | bytearray | None:
        raise NotImplementedError

    def read(self, size: int = -1) -> bytes:
        while not self._buffer and not self._eof:
            item = self._next()
            if item is None:
                self._eof = True
            else:
                self._buffer = memoryview(item)
        size = len(self._buffer) if size is None or size < 0 else size
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return bytes(out)

    def readinto(self, target: Any) -> int:
        data = self.read(len(target))
        target[: len(data)] = data
        return len(data)


class _PlainReader(_StagedReader):
    """What `encrypt_io` reads: the compressed bytes, EOF only after `finish()`."""

    def __init__(self, handoff: queue.Queue[bytes | None], abort: threading.Event) -> None:
        super().__init__()
        self._handoff = handoff
        self._abort = abort

    def _next(self) -> bytes | None:
        while True:
            if self._abort.is_set():
                raise _Aborted("the upload stopped")  # never EOF: that would seal a short file
            try:
                return self._handoff.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue


class _ListWriter:
    """What `encrypt_io` writes to: a list the caller drains; it never raises."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: list[bytes] = []
        self.written = 0

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        with self._lock:
            self._parts.append(chunk)
            self.written += len(chunk)
        return len(chunk)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        with self._lock:
            parts, self._parts = self._parts, []
        return b"".join(parts)


class EncryptingCompressor:
    """A Compressor whose output is the inner compressor's output encrypted to `recipients`.

    Memory stays bounded: at most HANDOFF_DEPTH compressed chunks wait for the
    encryptor, and its output is taken at every call.
    """

    def __init__(self, inner: Compressor, recipients: Sequence[Recipient]) -> None:
        if not recipients:
            raise ValueError("encryption needs at least one recipient")
        self._inner = inner
        self._recipients = [r.to_pyrage() for r in recipients]
        self._handoff: queue.Queue[bytes | None] = queue.Queue(HANDOFF_DEPTH)
        self._abort = threading.Event()
        self._writer = _ListWriter()
        self._reader = _PlainReader(self._handoff, self._abort)
        self._error: BaseException | None = None
        self.plain_bytes = 0  # compressed bytes handed to the encryptor
        self._thread = threading.Thread(target=self._run, name="zfs-offsite-encrypt", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            pyrage.encrypt_io(self._reader, self._writer, self._recipients)
        except BaseException as exc:  # handed to the caller by _check
            self._error = exc

    def _check(self) -> None:
        if self._error is not None:
            if self._abort.is_set():
                raise ZfsOffsiteError("encryption stopped: the upload was aborted")
            raise IntegrityError(f"age encryption failed: {self._error}") from self._error

    def _put(self, data: bytes | None) -> None:
        while True:
            self._check()
            if not self._thread.is_alive() and self._error is None:
                raise IntegrityError("age encryption ended before its input did")
            try:
                self._handoff.put(data, timeout=POLL_SECONDS)
                return
            except queue.Full:
                continue

    def compress(self, data: bytes) -> bytes:
        plain = self._inner.compress(data)
        if plain:
            self.plain_bytes += len(plain)
            self._put(plain)
        return self._writer.take()

    def finish(self) -> bytes:
        plain = self._inner.finish()
        if plain:
            self.plain_bytes += len(plain)
            self._put(plain)
        self._put(None)
        while self._thread.is_alive():
            self._thread.join(POLL_SECONDS)
        self._check()
        self._check_length()
        return self._writer.take()

    def _check_length(self) -> None:
        """The output must be a header plus every chunk of the input (pyrage's last-flush bug).

        age cuts the plaintext into 64 KiB chunks, each with a 16-byte tag, after a
        16-byte nonce; the header (recipient stanzas) is what is left, under 64 KiB.
        """
        chunks = max(1, -(-self.plain_bytes // AGE_CHUNK))
        payload = AGE_NONCE + self.plain_bytes + chunks * AGE_TAG
        header = self._writer.written - payload
        if not 0 < header <= HEADER_BYTES:
            raise IntegrityError(
                f"age encryption wrote {self._writer.written} bytes for {self.plain_bytes} "
                "bytes in: the output is cut short or overlong"
            )

    def abort(self) -> None:
        """Stop the encryptor without sealing a file (its reader raises, never EOF)."""
        self._abort.set()
        self._thread.join(timeout=10)


# --- Reading: decrypt, then decompress -------------------------------------------------


class _ChunkReader(_StagedReader):
    """What `decrypt_io` reads: the stored chunks; their iterator's errors are kept aside."""

    def __init__(self, chunks: Iterator[bytes | bytearray], abort: threading.Event) -> None:
        super().__init__()
        self._chunks = chunks
        self._abort = abort
        self.error: BaseException | None = None

    def _next(self) -> bytes | bytearray | None:
        if self._abort.is_set():
            raise _Aborted("the reader stopped")
        try:
            # None at the end: the iterator's own end checks (size, sha256) have passed.
            return next(self._chunks, None)
        except BaseException as exc:
            self.error = exc
            raise


class _QueueWriter:
    """What `decrypt_io` writes to: a bounded queue the consumer reads."""

    def __init__(self, out: queue.Queue[bytes | BaseException | None], abort: threading.Event):
        self._out = out
        self._abort = abort

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        while True:
            if self._abort.is_set():
                raise _Aborted("the consumer stopped")
            try:
                self._out.put(chunk, timeout=POLL_SECONDS)
                return len(chunk)
            except queue.Full:
                continue

    def flush(self) -> None:
        pass


def decrypted_chunks(
    chunks: Iterator[bytes | bytearray],
    identities: Sequence[Identity],
    where: str,
    recipients: Sequence[str] = (),
) -> Iterator[bytes]:
    """The plaintext of an age file read as `chunks`; every error names `where`.

    Output is provisional until the generator ends: a corrupt or truncated file
    raises IntegrityError after the chunks before the damage. A wrong identity
    raises IdentityError before any output.
    """
    out: queue.Queue[bytes | BaseException | None] = queue.Queue(HANDOFF_DEPTH)
    abort = threading.Event()
    reader = _ChunkReader(chunks, abort)
    writer = _QueueWriter(out, abort)

    def run() -> None:
        try:
            pyrage.decrypt_io(reader, writer, list(identities))
            for _ in chunks:  # the checks at the end of the stored bytes (size, sha256)
                pass
            out.put(None)
        except BaseException as exc:
            if not abort.is_set():
                out.put(reader.error or exc)

    thread = threading.Thread(target=run, name="zfs-offsite-decrypt", daemon=True)
    thread.start()
    try:
        while (item := out.get()) is not None:
            if isinstance(item, BaseException):
                raise _decrypt_error(item, where, recipients, identities)
            yield item
    finally:
        abort.set()
        while thread.is_alive():  # unblock a writer waiting on a full queue
            with contextlib.suppress(queue.Empty):
                out.get(timeout=0.1)
        thread.join()
        if isinstance(chunks, Generator):
            chunks.close()  # stops read-ahead threads and closes the remote file


def _decrypt_error(
    exc: BaseException, where: str, recipients: Sequence[str], identities: Sequence[Identity]
) -> BaseException:
    if isinstance(exc, ZfsOffsiteError | KeyboardInterrupt):
        return exc  # from the stored bytes' own checks, or a stop: as raised
    if isinstance(exc, pyrage.DecryptError) and NO_MATCH in str(exc):
        return no_match(where, recipients, identities)
    if isinstance(exc, pyrage.DecryptError | OSError):
        return IntegrityError(f"{where}: the age data is corrupt or truncated ({_line(exc)})")
    return exc


def _line(exc: BaseException) -> str:
    """pyrage's message, first line only (some run on with advice), never empty."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def no_match(
    where: str, recipients: Sequence[str], identities: Sequence[Identity]
) -> ZfsOffsiteError:
    """No identity opened the header: a wrong key, or a damaged header when the key is listed.

    The sidecar records the recipients; an identity among them that still
    fails means the stanza meant for it was damaged, not that the admin
    chose the wrong key.
    """
    listed = [key for key in identity_keys(identities) if key in recipients]
    if listed:
        return IntegrityError(
            f"{where}: the age header is damaged or the sidecar was edited: the sidecar lists "
            f"the identity's key {listed[0]} among the recipients, but the header does not "
            "open with it; put back a sound copy of the file, or use another recipient's identity"
        )
    return wrong_identity(where, recipients, identities)


def wrong_identity(
    where: str, recipients: Sequence[str], identities: Sequence[Identity] = ()
) -> IdentityError:
    shown = f" (its recipients: {', '.join(recipients)})" if recipients else ""
    keys = identity_keys(identities)
    ours = f"; the identity's key is {', '.join(keys)}" if keys else ""
    return IdentityError(
        f"{where}: the identity in setting encryption.identity_file opens none of the file's "
        f"recipients{shown}{ours}: name the secret key of one of them"
    )


# What pyrage says when a header opened and only the payload, cut short here on purpose,
# failed; any other error reading the head is the header's own.
_PAYLOAD_ERRORS = ("decryption error",)


def check_identity(
    head: bytes, identities: Sequence[Identity], where: str, recipients: Sequence[str] = ()
) -> None:
    """Raise IdentityError if `identities` cannot open the age file that starts with `head`.

    Decrypting the first bytes reads the header: a wrong key fails there, in
    milliseconds, before anything is received, and so does a damaged header
    (IntegrityError). Errors of the payload (cut short by design, or damaged)
    are left to the full read's checks.
    """
    try:
        pyrage.decrypt(head, list(identities))
    except pyrage.DecryptError as exc:
        if NO_MATCH in str(exc):
            raise no_match(where, recipients, identities) from None
        if _line(exc) not in _PAYLOAD_ERRORS:
            raise IntegrityError(
                f"{where}: the age header is damaged or not age ({_line(exc)}); replace the "
                "file with a sound copy"
            ) from None
    except OSError:
        pass  # the header opened; the payload was cut short here on purpose
