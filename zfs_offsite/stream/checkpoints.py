"""Resume checkpoints: what an upload recorded of its stored bytes, and what a retry may skip.

Pure: bytes and values in, decisions out (the store's side is `stream/resume.py`).

The checkpoint file is JSON lines. The first line says what defines the stream
(snapshot GUIDs, the `zfs send` argv with its flags, compression, recipients)
and the chunk size; then one line per chunk of stored bytes, in order,
`{"end": e, "sha256": h}`: h is the sha256 of the stored bytes `[0, e)`, and
the line is appended only after the partial file's bytes up to `e` were
acknowledged and flushed. So every line names bytes that are on the server's
disk; but on S3 with parts larger than a chunk (large streams, `s3_parts.py`), a
line inside a part comes before that part is stored, so a resume keeps only
lines the stored parts cover, and goes back to one where a part ends
(`stream/resume.py`, `S3Store.continues_at`). A line cut short (no newline,
or not JSON) ends the record: it and everything after it are ignored.

Each hash covers the whole prefix, not just its chunk, so it costs nothing:
it is the file's own running sha256 (which the sidecar needs anyway), copied
at the chunk's end. Comparing prefixes finds the same first differing chunk
as comparing chunks would: the prefix hashes agree up to the chunk before it.

A recorded checkpoint is a claim about the stored bytes, not a promise that the
stream comes out the same again: the retry hashes the regenerated stream and
sends everything from the first chunk whose prefix differs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TypeVar

T = TypeVar("T")

CHUNK_BYTES = 64 * 1024 * 1024
FORMAT = 2  # 1 hashed each chunk alone: its files are not resumed (a fresh upload)


@dataclass(frozen=True)
class StreamIdentity:
    """What makes two runs produce the same stored bytes, as far as settings can say.

    `threads` is recorded, not compared: whether zstd's output depends on it is
    the compressor's business, and the checkpoints' hashes find out.
    """

    dataset: str
    snapshot_guid: int
    base_guid: int | None
    send_argv: tuple[str, ...]
    raw: bool
    compression: str
    level: int
    threads: int = 1
    recipients: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: object) -> StreamIdentity | None:
        if not isinstance(raw, dict):
            return None
        try:
            identity = cls(
                dataset=_typed(raw["dataset"], str),
                snapshot_guid=_typed(raw["snapshot_guid"], int),
                base_guid=None if raw["base_guid"] is None else _typed(raw["base_guid"], int),
                send_argv=tuple(_typed(a, str) for a in _typed(raw["send_argv"], list)),
                raw=_typed(raw["raw"], bool),
                compression=_typed(raw["compression"], str),
                level=_typed(raw["level"], int),
                threads=_typed(raw.get("threads", 1), int),
                recipients=tuple(_typed(r, str) for r in _typed(raw.get("recipients", []), list)),
            )
        except (KeyError, TypeError):
            return None
        return identity


def _typed(value: object, kind: type[T]) -> T:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"expected {kind.__name__}")
    return value


def never_reproduces(identity: StreamIdentity) -> str | None:
    """Why this stream can never come out the same twice (so checkpoints are pointless)."""
    if identity.recipients:
        return "an age-encrypted stream never reproduces (each file has a random file key)"
    return None


def why_not_resume(recorded: StreamIdentity, current: StreamIdentity) -> str | None:
    """Why a partial written for `recorded` cannot hold the start of `current`'s stream."""
    if why := never_reproduces(current) or never_reproduces(recorded):
        return why
    checks = (
        ("dataset", recorded.dataset, current.dataset),
        ("snapshot GUID", recorded.snapshot_guid, current.snapshot_guid),
        ("base GUID", recorded.base_guid, current.base_guid),
        ("zfs send command", " ".join(recorded.send_argv), " ".join(current.send_argv)),
        ("raw send", recorded.raw, current.raw),
        ("compression", recorded.compression, current.compression),
        ("compression level", recorded.level, current.level),
    )
    for what, before, now in checks:
        if before != now:
            return f"{what} {before} -> {now}"
    return None


@dataclass(frozen=True)
class Checkpoints:
    """A checkpoint file, read back: the stream it is for and its prefixes' hashes.

    `ends[n]` is the length of the file's first `n` checkpoints (header
    included): where to cut it to keep exactly those.
    """

    identity: StreamIdentity
    chunk: int
    hashes: tuple[str, ...]
    ends: tuple[int, ...]

    def usable(self, partial_size: int) -> int:
        """How many checkpoints the partial file still holds the bytes of."""
        return min(len(self.hashes), partial_size // self.chunk)

    def keep(self, count: int) -> Checkpoints:
        """The first `count` checkpoints only."""
        return Checkpoints(self.identity, self.chunk, self.hashes[:count], self.ends[: count + 1])


def header_line(identity: StreamIdentity, chunk: int = CHUNK_BYTES) -> bytes:
    header = {"checkpoints": FORMAT, "chunk": chunk, "stream": identity.to_json()}
    return (json.dumps(header, sort_keys=True) + "\n").encode()


def checkpoint_line(end: int, sha256: str) -> bytes:
    """The record that the stored bytes `[0, end)` are durable and hash to `sha256`."""
    return (json.dumps({"end": end, "sha256": sha256}) + "\n").encode()


def parse_checkpoints(data: bytes) -> Checkpoints | None:
    """The checkpoints in `data`; None if its header is not one this version writes."""
    lines = data.split(b"\n")
    if len(lines) < 2:  # not even the header's newline
        return None
    try:
        header = json.loads(lines[0])
    except ValueError:
        return None
    if not isinstance(header, dict) or header.get("checkpoints") != FORMAT:
        return None
    chunk = header.get("chunk")
    identity = StreamIdentity.from_json(header.get("stream"))
    if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk <= 0 or identity is None:
        return None
    hashes: list[str] = []
    ends = [len(lines[0]) + 1]
    for line in lines[1:-1]:  # the last element follows the last newline: cut short or empty
        digest = _checkpoint(line, (len(hashes) + 1) * chunk)
        if digest is None:
            break
        hashes.append(digest)
        ends.append(ends[-1] + len(line) + 1)
    return Checkpoints(identity, chunk, tuple(hashes), tuple(ends))


def _checkpoint(line: bytes, end: int) -> str | None:
    """The hash on a checkpoint line if it is the one expected to end at `end`."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict) or entry.get("end") != end:
        return None
    digest = entry.get("sha256")
    if not isinstance(digest, str) or len(digest) != 64:
        return None
    try:
        int(digest, 16)
    except ValueError:
        return None
    return digest


class StoredHash:
    """The sha256 of a stream's stored bytes, arriving in blocks of any size, and of each
    prefix that ends a chunk (the checkpoints' hashes)."""

    def __init__(self, chunk: int | None = CHUNK_BYTES) -> None:
        self.chunk = chunk  # None: no checkpoints, just the whole stream's hash
        self.offset = 0  # bytes seen so far
        self._hash = hashlib.sha256()

    def split(self, data: bytes | memoryview) -> Iterator[tuple[memoryview, str | None]]:
        """`data` in pieces that never cross a chunk boundary; a piece that ends a chunk
        comes with the sha256 of everything up to its end (`self.offset`)."""
        view = memoryview(data)
        while view:
            room = self.chunk - self.offset % self.chunk if self.chunk else len(view)
            piece, view = view[:room], view[room:]
            self._hash.update(piece)
            self.offset += len(piece)
            ends_chunk = self.chunk is not None and self.offset % self.chunk == 0
            yield piece, self._hash.copy().hexdigest() if ends_chunk else None

    def hexdigest(self) -> str:
        return self._hash.hexdigest()
