from __future__ import annotations

import os
import struct

import pytest

from zfs_offsite.compression import compressor, decompressor
from zfs_offsite.errors import IntegrityError
from zfs_offsite.naming import Compression
from zfs_offsite.pipeline import RECORD_SIZE, ends_with_end_record


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
