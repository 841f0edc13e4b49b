"""Part sizing of the S3 multipart upload: any stream up to the limit fits 10,000 parts,
in bounded memory."""

from __future__ import annotations

import hashlib
import time
import tracemalloc

from zfs_offsite.remote.s3_parts import MAX_PARTS, MiB, plan_parts
from zfs_offsite.remote.s3_upload import MultipartWriter, UploadState, multipart_etag

UNKNOWN = plan_parts(None)  # a stream whose size is not known in advance
PART = UNKNOWN.size(1)


def test_parts_grow_after_4000_so_500_gib_fit_in_10000_parts() -> None:
    part_size = UNKNOWN.size
    assert part_size(1) == part_size(4000) == 32 * MiB
    assert part_size(4001) == part_size(7000) == 64 * MiB  # growth past 64 MiB: remote/s3_parts
    total = UNKNOWN.capacity()
    assert total >= 500 * 1024 * MiB
    # the same stream in 32 MiB parts alone would need 16,000 parts
    assert 500 * 1024 * MiB // (32 * MiB) > MAX_PARTS


def test_buffers_stay_bounded_whatever_the_part_size() -> None:
    """Parts in flight plus the one being filled: the memory the upload holds (while parts
    are at most 64 MiB: the 312.5 GiB before growth past the bound, remote/s3_parts)."""
    part_size, in_flight = UNKNOWN.size, UNKNOWN.in_flight
    held = {part_size(n) * (in_flight(part_size(n)) + 1) for n in (1, 4000, 4001, 7000)}
    assert held == {96 * MiB, 128 * MiB}


def test_the_multipart_etag_is_the_md5_of_the_part_md5s() -> None:
    parts = [b"a" * 10, b"b" * 3]
    md5s = [hashlib.md5(p).digest() for p in parts]
    inner = hashlib.md5(md5s[0] + md5s[1]).hexdigest()
    assert multipart_etag(md5s) == f'"{inner}-2"'


def test_the_writer_holds_no_more_than_the_parts_in_flight_and_one_filling() -> None:
    """The stated bound, measured: while a slow store holds the parts in flight, the
    writer's own allocations peak at (in flight + 1) parts, with no copy of a part beside."""
    sent: list[tuple[int, int]] = []

    def slow_store(number: int, part: bytearray) -> str:
        time.sleep(0.2)  # the parts in flight stay held while the next one fills
        sent.append((number, len(part)))
        return f'"{hashlib.md5(part).hexdigest()}"'

    writer = MultipartWriter(UploadState("k", "u"), slow_store, "test")
    piece = memoryview(bytes(MiB))
    tracemalloc.start()
    try:
        for _ in range(5 * PART // MiB + 3):
            writer.write(piece)
        writer.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sorted(sent) == [(n, PART) for n in range(1, 6)] + [(6, 3 * MiB)]
    assert peak <= (UNKNOWN.in_flight(PART) + 1) * PART + 64 * 1024, f"peak {peak / MiB:.1f} MiB"
