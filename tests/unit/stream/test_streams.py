from __future__ import annotations

import os
import struct
import subprocess
import threading
from collections.abc import Iterator

import pytest

from zfs_offsite.archive.names import Compression
from zfs_offsite.errors import IntegrityError
from zfs_offsite.stream.compression import compressor, decompressor
from zfs_offsite.stream.format import RECORD_SIZE, ends_with_end_record
from zfs_offsite.stream.readback import read_ahead


def test_end_record_detection() -> None:
    end = struct.pack("<I", 5) + bytes(RECORD_SIZE - 4)
    write = struct.pack("<I", 3) + bytes(RECORD_SIZE - 4)
    assert ends_with_end_record(b"x" * 1000 + end)
    assert ends_with_end_record(struct.pack(">I", 5) + bytes(RECORD_SIZE - 4))
    assert not ends_with_end_record(end + write)
    assert not ends_with_end_record(end[:-1])


@pytest.mark.parametrize("kind", list(Compression))
def test_compress_round_trip_and_truncation(kind: Compression) -> None:
    data = os.urandom(300_000) + b"abc" * 100_000
    c = compressor(kind, 1, 2)
    packed = c.compress(data) + c.finish()
    d = decompressor(kind)
    out = b"".join(d.decompress(packed[i : i + 7000]) for i in range(0, len(packed), 7000))
    d.finish()
    assert out == data
    d = decompressor(kind)
    d.decompress(packed[:-20])
    with pytest.raises(IntegrityError, match="ends early"):
        d.finish()


def test_read_ahead_keeps_order_and_raises_after_the_chunks_before_the_error() -> None:
    def chunks() -> Iterator[bytes]:
        yield b"a"
        yield b"b"
        raise IntegrityError("bad tail")

    got: list[bytes] = []
    with pytest.raises(IntegrityError, match="bad tail"):
        for chunk in read_ahead(chunks(), depth=1):
            got.append(chunk)
    assert got == [b"a", b"b"]


def test_read_ahead_closes_its_source_when_the_consumer_stops_early() -> None:
    closed = threading.Event()

    def endless() -> Iterator[bytes]:
        try:
            while True:
                yield b"x"
        finally:
            closed.set()

    reader = read_ahead(endless(), depth=2)
    assert next(reader) == b"x"
    reader.close()
    assert closed.wait(5)


@pytest.mark.parametrize("kind", list(Compression))
def test_many_chunks_come_out_in_order_and_standard_tools_read_them(kind: Compression) -> None:
    """Compression runs in worker threads, some chunks behind: nothing may be lost or reordered."""
    chunks = [os.urandom(50_000) + bytes([i]) * 200_000 for i in range(40)]
    c = compressor(kind, 3 if kind is Compression.ZSTD else 1, 1)
    packed = b"".join(c.compress(chunk) for chunk in chunks) + c.finish()
    tool = ["zstd", "-d", "-c", "-q"] if kind is Compression.ZSTD else ["gzip", "-d", "-c"]
    done = subprocess.run(tool, input=packed, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"".join(chunks)


def test_a_failure_in_the_background_compressor_reaches_the_caller() -> None:
    c = compressor(Compression.GZIP, 1)
    c.compress(b"data")
    with pytest.raises(TypeError):
        for _ in range(10):  # the worker's error surfaces at a later call at the latest
            c.compress("not bytes")  # type: ignore[arg-type]
        c.finish()
