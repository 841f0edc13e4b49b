"""Resume checkpoints: their format, what a retry may skip, and the upload that uses them.

The format and decisions are pure. The upload tests run the real pipeline into
a local directory store with a stand-in for `zfs send` (bytes and an exit
status) and 1 MiB chunks instead of 64 MiB, so a few MiB show every case: a
cut, a resume, a stream that differs at the first chunk or in the middle.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from zfs_offsite.archive.index import read_member_archive
from zfs_offsite.archive.names import Compression, Kind, classify
from zfs_offsite.errors import PermanentError, SendError, StoreError
from zfs_offsite.plan.retention import plan_prune
from zfs_offsite.remote.local import LocalStore
from zfs_offsite.remote.store import Writer
from zfs_offsite.stream import resume as resume_module
from zfs_offsite.stream.checkpoints import (
    StoredHash,
    StreamIdentity,
    checkpoint_line,
    header_line,
    parse_checkpoints,
    why_not_resume,
)
from zfs_offsite.stream.compression import Compressor, compressor
from zfs_offsite.stream.format import RECORD_SIZE
from zfs_offsite.stream.upload import Resumable, StreamResult, stream_to_store
from zfs_offsite.values.partials import checkpoint_name, split_partial

END = struct.pack("<I", 5) + bytes(RECORD_SIZE - 4)  # a DRR_END record
MiB = 1024 * 1024
IDENTITY = StreamIdentity(
    dataset="elabfs-erin",
    snapshot_guid=123,
    base_guid=None,
    send_argv=("zfs", "send", "-L", "pool/elabfs-erin@a"),
    raw=False,
    compression="zstd",
    level=3,
)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the format -------------------------------------------------------------------


def test_the_stored_hash_splits_any_blocks_at_the_chunk_ends_with_each_prefix_hash() -> None:
    rng = random.Random(1)
    data = rng.randbytes(10_000)
    hashes = StoredHash(chunk=1000)
    pieces, found = [], []
    start = 0
    while start < len(data):
        size = rng.randint(1, 2500)
        for piece, done in hashes.split(data[start : start + size]):
            pieces.append(bytes(piece))
            if done is not None:
                found.append((hashes.offset, done))
        start += size
    assert b"".join(pieces) == data
    assert found == [(end, digest(data[:end])) for end in range(1000, 10_001, 1000)]
    assert hashes.hexdigest() == digest(data)


def test_without_checkpoints_the_stored_hash_passes_blocks_whole() -> None:
    hashes = StoredHash(chunk=None)
    out = [(bytes(p), d) for block in (b"ab", b"", b"cde") for p, d in hashes.split(block)]
    assert out == [(b"ab", None), (b"cde", None)]
    assert hashes.offset == 5 and hashes.hexdigest() == digest(b"abcde")


def test_checkpoints_read_back_with_where_each_ends() -> None:
    header = header_line(IDENTITY, chunk=10)
    lines = [checkpoint_line((i + 1) * 10, digest(bytes([i]))) for i in range(3)]
    parsed = parse_checkpoints(header + b"".join(lines))
    assert parsed is not None
    assert parsed.identity == IDENTITY and parsed.chunk == 10
    assert parsed.hashes == tuple(digest(bytes([i])) for i in range(3))
    assert parsed.ends == (
        len(header),
        *(len(header) + sum(map(len, lines[:n])) for n in (1, 2, 3)),
    )
    assert parsed.keep(1).hashes == parsed.hashes[:1] and parsed.keep(1).ends == parsed.ends[:2]
    assert parsed.usable(29) == 2 and parsed.usable(1000) == 3


@pytest.mark.parametrize(
    "tail, count",
    [
        (b'{"end": 30, "sha2', 2),  # cut short: no newline
        (b"garbage\n", 2),
        (checkpoint_line(40, "ab" * 32), 2),  # not the end that follows
        (checkpoint_line(30, "not hex"), 2),
        (b'{"offset": 20, "sha256": "' + b"ab" * 32 + b'"}\n', 2),  # format 1's line
        (checkpoint_line(30, "ab" * 32), 4),  # whole: the next line counts too
    ],
)
def test_a_damaged_or_cut_line_ends_the_record(tail: bytes, count: int) -> None:
    good = header_line(IDENTITY, chunk=10) + checkpoint_line(10, "0" * 64)
    good += checkpoint_line(20, "1" * 64)
    parsed = parse_checkpoints(good + tail + checkpoint_line(40, "2" * 64))
    assert parsed is not None and len(parsed.hashes) == count


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b'{"checkpoints": 2',
        b'{"checkpoints": 2, "chunk": 10, "stream": {}}\n',
        b"[]\n",
        # format 1 hashed each chunk alone: its hashes are not prefix hashes
        header_line(IDENTITY, chunk=10).replace(b'"checkpoints": 2', b'"checkpoints": 1')
        + b'{"offset": 0, "sha256": "'
        + b"ab" * 32
        + b'"}\n',
    ],
)
def test_a_header_this_version_did_not_write_is_no_checkpoint_file(data: bytes) -> None:
    assert parse_checkpoints(data) is None


def test_what_makes_a_partial_of_another_stream() -> None:
    same = StreamIdentity(**{**IDENTITY.to_json(), "threads": 4})  # type: ignore[arg-type]
    assert why_not_resume(IDENTITY, same) is None  # threads: the hashes decide
    level = StreamIdentity(**{**IDENTITY.to_json(), "level": 5})  # type: ignore[arg-type]
    assert why_not_resume(IDENTITY, level) == "compression level 3 -> 5"
    raw = StreamIdentity(**{**IDENTITY.to_json(), "raw": True})  # type: ignore[arg-type]
    assert why_not_resume(IDENTITY, raw) == "raw send False -> True"
    age = StreamIdentity(**{**IDENTITY.to_json(), "recipients": ("age1x",)})  # type: ignore[arg-type]
    assert "never reproduces" in (why_not_resume(age, age) or "")


def test_checkpoint_files_are_partials_of_their_backup_never_backups() -> None:
    partial = "elabfs-erin@auto-20190806.0200-1w.zst.0123456789ab.partial"
    name = checkpoint_name(partial)
    assert name == "elabfs-erin@auto-20190806.0200-1w.zst.0123456789ab.ckpt.partial"
    kind, owner = classify(name)
    assert kind is Kind.PARTIAL and owner is not None
    assert owner.filename == "elabfs-erin@auto-20190806.0200-1w.zst"
    assert split_partial(partial) == ("elabfs-erin@auto-20190806.0200-1w.zst", "0123456789ab")
    assert split_partial(name) is None
    assert split_partial("elabfs-erin@a.gz.partial") is None  # the seed never wrote these


# --- the upload ---------------------------------------------------------------------


class FakeSend:
    """A finished `zfs send`: its stdout and its exit status."""

    def __init__(self, data: bytes) -> None:
        self.stdout = io.BytesIO(data)
        self.stdin = None

    def wait(self) -> int:
        return 0

    def stderr_text(self) -> str:
        return ""

    def kill(self) -> None:
        pass


class CuttingStore(LocalStore):
    """A local store whose data writes fail once `cut_after` bytes were written by this store."""

    def __init__(self, root: Path, cut_after: int | None = None) -> None:
        super().__init__(root)
        self.cut_after = cut_after
        self.sent = 0  # bytes written to partial backup files (not checkpoints)

    def _count(self, path: str, writer: Writer) -> Writer:
        if ".ckpt." in path:
            return writer
        store, inner_write = self, writer.write

        def write(data: bytes | memoryview) -> int:
            store.sent += len(data)
            if store.cut_after is not None and store.sent > store.cut_after:
                raise StoreError(f"write {path}: connection failed: cut")
            return inner_write(data)

        writer.write = write  # type: ignore[method-assign]
        return writer

    def open_write(self, path: str):  # type: ignore[no-untyped-def]
        return self._count(path, super().open_write(path))

    def open_append(self, path: str, offset: int):  # type: ignore[no-untyped-def]
        return self._count(path, super().open_append(path, offset))


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resume_module, "CHUNK_BYTES", MiB)


def upload(
    store: LocalStore, raw: bytes, level: int = 3, identity: StreamIdentity = IDENTITY
) -> StreamResult:
    def start() -> tuple[FakeSend, Compressor]:
        return FakeSend(raw), compressor(Compression.ZSTD, level)

    return stream_to_store(
        *start(),  # type: ignore[arg-type]
        store,
        "m/f.zst",
        resume=Resumable(identity, start),  # type: ignore[arg-type]
    )


def whole(raw: bytes, level: int = 3) -> bytes:
    """The stored bytes of an upload without a cut."""
    zstd = compressor(Compression.ZSTD, level)
    out = []
    for start in range(0, len(raw), MiB):
        out.append(zstd.compress(raw[start : start + MiB]))
    return b"".join(out) + zstd.finish()


@pytest.fixture
def raw() -> bytes:
    return random.Random(7).randbytes(6 * MiB) + END


def cut_upload(tmp_path: Path, raw: bytes, cut_after: int) -> CuttingStore:
    (tmp_path / "m").mkdir(exist_ok=True)
    store = CuttingStore(tmp_path, cut_after)
    with pytest.raises(StoreError, match="cut"):
        upload(store, raw)
    return store


def files(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "m").iterdir())


def check(tmp_path: Path, result: StreamResult, expected: bytes) -> None:
    stored = (tmp_path / result.partial).read_bytes()
    assert stored == expected
    assert result.sha256 == digest(expected) and result.stored_bytes == len(expected)


def test_a_retry_sends_only_what_follows_the_last_checkpoint(tmp_path: Path, raw: bytes) -> None:
    cut = cut_upload(tmp_path, raw, cut_after=int(4.5 * MiB))
    kept = files(tmp_path)
    assert len(kept) == 2 and any(".ckpt." in name for name in kept)  # kept for the retry
    retry = CuttingStore(tmp_path)
    result = upload(retry, raw)
    expected = whole(raw)
    check(tmp_path, result, expected)
    assert result.resumed_bytes == 4 * MiB
    assert retry.sent == len(expected) - 4 * MiB < cut.sent
    assert result.partial == "m/" + next(n for n in kept if ".ckpt." not in n)


def test_a_stream_that_differs_from_the_first_chunk_is_uploaded_afresh(
    tmp_path: Path, raw: bytes
) -> None:
    cut_upload(tmp_path, raw, cut_after=int(3.5 * MiB))
    differs = CuttingStore(tmp_path)
    # The same settings as far as the checkpoint file can tell, other bytes from the first.
    start = _start(raw, level=1)
    result = stream_to_store(*start(), differs, "m/f.zst", resume=Resumable(IDENTITY, start))  # type: ignore[arg-type]
    expected = whole(raw, level=1)
    check(tmp_path, result, expected)
    assert result.resumed_bytes == 0 and differs.sent == len(expected)
    name = result.partial.split("/")[1]
    assert files(tmp_path) == sorted([name, checkpoint_name(name)])  # the old attempt is gone


def _start(raw: bytes, level: int) -> Callable[[], tuple[FakeSend, Compressor]]:
    return lambda: (FakeSend(raw), compressor(Compression.ZSTD, level))


def test_a_stream_that_differs_midway_is_sent_from_the_first_chunk_that_differs(
    tmp_path: Path, raw: bytes
) -> None:
    cut_upload(tmp_path, raw, cut_after=int(4.5 * MiB))
    # Chunk 2 of the stored bytes is not what this stream gives there: as if the stream
    # came out differently from 2 MiB on. The record says what was stored.
    (ckpt,) = (p for p in (tmp_path / "m").iterdir() if ".ckpt." in p.name)
    lines = ckpt.read_bytes().split(b"\n")
    lines[3] = checkpoint_line(3 * MiB, "0" * 64).rstrip(b"\n")
    ckpt.write_bytes(b"\n".join(lines))
    retry = CuttingStore(tmp_path)
    result = upload(retry, raw)
    expected = whole(raw)
    check(tmp_path, result, expected)
    assert result.resumed_bytes == 2 * MiB
    assert retry.sent == len(expected) - 2 * MiB == result.sent_bytes
    assert result.sending_started is not None and result.sending_started > result.started


def test_an_encrypted_stream_writes_no_checkpoints_and_never_resumes(tmp_path: Path) -> None:
    age = StreamIdentity(**{**IDENTITY.to_json(), "recipients": ("age1x",)})  # type: ignore[arg-type]
    (tmp_path / "m").mkdir()
    stale = tmp_path / "m" / "f.zst.0123456789ab.partial"
    stale.write_bytes(b"x" * 3 * MiB)
    result = upload(CuttingStore(tmp_path), random.Random(3).randbytes(3 * MiB) + END, identity=age)
    assert result.checkpoints == "" and result.resumed_bytes == 0
    assert files(tmp_path) == [result.partial.split("/")[1]]  # the dead attempt is gone


class FailedSend(FakeSend):
    """A `zfs send` that a retry cannot help: the snapshot is gone."""

    def wait(self) -> int:
        return 1

    def stderr_text(self) -> str:
        return "cannot open 'pool/elabfs-erin@a': dataset does not exist"


def test_a_permanent_failure_removes_the_partial_and_its_checkpoints(
    tmp_path: Path, raw: bytes
) -> None:
    cut_upload(tmp_path, raw, cut_after=int(2.5 * MiB))
    assert len(files(tmp_path)) == 2

    def start() -> tuple[FakeSend, Compressor]:
        return FailedSend(raw), compressor(Compression.ZSTD, 3)

    with pytest.raises(SendError, match="does not exist"):
        stream_to_store(
            *start(), LocalStore(tmp_path), "m/f.zst", resume=Resumable(IDENTITY, start)
        )  # type: ignore[arg-type]
    assert files(tmp_path) == []


@pytest.mark.parametrize("when", ["checking", "sending"])
def test_a_stop_keeps_a_partial_with_checkpoints_for_the_next_run(
    tmp_path: Path, raw: bytes, when: str
) -> None:
    """Ctrl-C, SIGTERM (a reboot) or a Cancel must not cost a long upload its progress;
    least of all while the retry only reads an earlier run's partial."""
    (tmp_path / "m").mkdir()
    store = LocalStore(tmp_path)
    if when == "checking":
        cut_upload(tmp_path, raw, cut_after=int(2.5 * MiB))
    kept = files(tmp_path)

    def start() -> tuple[FakeSend, Compressor]:
        return FakeSend(raw), compressor(Compression.ZSTD, 3)

    def tick() -> None:
        if when == "checking" or any(".ckpt." in name for name in files(tmp_path)):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stream_to_store(*start(), store, "m/f.zst", tick=tick, resume=Resumable(IDENTITY, start))  # type: ignore[arg-type]
    after = files(tmp_path)
    assert len(after) == 2 and any(".ckpt." in name for name in after)
    if when == "checking":
        assert after == kept
    result = upload(CuttingStore(tmp_path), raw)  # the next run resumes it
    assert result.resumed_bytes > 0
    check(tmp_path, result, whole(raw))


@pytest.mark.parametrize("damaged_chunk, kept_chunks", [(0, 0), (1, 1)])
def test_stored_bytes_damaged_between_attempts_are_never_continued(
    tmp_path: Path, raw: bytes, damaged_chunk: int, kept_chunks: int
) -> None:
    """The checkpoints say what was stored; the stored bytes are read back to check it."""
    cut_upload(tmp_path, raw, cut_after=int(3.5 * MiB))
    (partial,) = (p for p in (tmp_path / "m").iterdir() if ".ckpt." not in p.name)
    with partial.open("r+b") as handle:  # bit rot inside a checkpointed chunk
        handle.seek(damaged_chunk * MiB + 1000)
        byte = handle.read(1)
        handle.seek(damaged_chunk * MiB + 1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    retry = CuttingStore(tmp_path)
    result = upload(retry, raw)
    expected = whole(raw)
    check(tmp_path, result, expected)  # the stored file is what its sha256 says
    assert result.resumed_bytes == kept_chunks * MiB
    assert retry.sent == len(expected) - kept_chunks * MiB


def test_a_checkpoint_file_that_is_a_link_is_never_followed(tmp_path: Path, raw: bytes) -> None:
    cut_upload(tmp_path, raw, cut_after=int(2.5 * MiB))
    (ckpt,) = (p for p in (tmp_path / "m").iterdir() if ".ckpt." in p.name)
    outside = tmp_path / "outside"
    outside.write_bytes(ckpt.read_bytes())
    before = outside.read_bytes()
    ckpt.unlink()
    ckpt.symlink_to(outside)
    result = upload(CuttingStore(tmp_path), raw)
    assert result.resumed_bytes == 0
    check(tmp_path, result, whole(raw))
    assert outside.read_bytes() == before


def test_checkpoints_of_another_chunk_size_are_not_used(tmp_path: Path, raw: bytes) -> None:
    """A checkpoint file's chunk size is not trusted: `chunk: 1` would mean a flush per byte."""
    cut_upload(tmp_path, raw, cut_after=int(2.5 * MiB))
    (ckpt,) = (p for p in (tmp_path / "m").iterdir() if ".ckpt." in p.name)
    lines = ckpt.read_bytes().split(b"\n")
    ckpt.write_bytes(b"\n".join([header_line(IDENTITY, chunk=MiB // 2), *lines[1:]]))
    result = upload(CuttingStore(tmp_path), raw)
    assert result.resumed_bytes == 0
    check(tmp_path, result, whole(raw))


class UnwritableStore(CuttingStore):
    """The earlier attempt's partial cannot be opened for writing (owned by another user)."""

    def open_append(self, path: str, offset: int):  # type: ignore[no-untyped-def]
        raise PermanentError(f"open {path}: permission denied on the backup server")


def test_an_earlier_partial_that_cannot_be_continued_is_left_for_a_fresh_upload(
    tmp_path: Path, raw: bytes
) -> None:
    cut_upload(tmp_path, raw, cut_after=int(2.5 * MiB))
    result = upload(UnwritableStore(tmp_path), raw)
    assert result.resumed_bytes == 0
    check(tmp_path, result, whole(raw))


def test_small_uploads_leave_no_checkpoint_file(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    result = upload(CuttingStore(tmp_path), os.urandom(MiB // 2) + END)
    assert result.checkpoints == "" and files(tmp_path) == [result.partial.split("/")[1]]


def test_the_index_counts_checkpoint_files_as_partials_and_prune_finds_them_stale(
    tmp_path: Path,
) -> None:
    member = tmp_path / "erin"
    member.mkdir()
    final = "elabfs-erin@auto-20190806.0200-1w.zst"
    for name in (f"{final}.0123456789ab.partial", f"{final}.0123456789ab.ckpt.partial"):
        (member / name).write_bytes(b"x")
        os.utime(member / name, (0, 0))  # long ago
    archive = read_member_archive(LocalStore(tmp_path), "erin", "elabfs-erin")
    assert archive.files == [] and archive.ignored == []
    assert sorted(p.name for p in archive.partials) == sorted(os.listdir(member))
    plan = plan_prune("erin", [], archive.partials, None, datetime.now(UTC), timedelta(hours=24))
    assert sorted(p.name for p in plan.stale_partials) == sorted(os.listdir(member))
