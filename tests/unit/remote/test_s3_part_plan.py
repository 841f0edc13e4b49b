"""The S3 part plan (remote/s3_parts.py): any stream up to S3's 5 TiB object limit fits
10,000 parts, from the size estimate where there is one, growing where there is none;
part buffers stay within the stated 256 MB while the size allows, and say so when not.
"""

from __future__ import annotations

import hashlib
import logging

import pytest

from zfs_offsite.remote import s3_parts
from zfs_offsite.remote.s3_parts import (
    MAX_PARTS,
    MEMORY_BOUND,
    MiB,
    plan_parts,
    resumed_schedule,
    why_this_memory,
)
from zfs_offsite.remote.s3_upload import MultipartWriter, UploadState

GiB, TiB = 1 << 30, 1 << 40
S3_LARGEST_OBJECT, S3_LARGEST_PART = 5 * TiB, 5 * GiB


def largest_memory(plan: s3_parts.PartSchedule, stream: int) -> int:
    """The most part buffers an upload of `stream` bytes holds at once under `plan`."""
    held, number, done = 0, 1, 0
    while done < stream:
        size = plan.size(number)
        held = max(held, plan.memory(size))
        done += size
        number += 1
    return held


def test_without_an_estimate_the_parts_grow_so_5_tib_fit_in_10000_parts() -> None:
    plan = plan_parts(None)
    assert plan.size(1) == plan.size(4000) == 32 * MiB  # the parts it always had
    assert plan.size(4001) == plan.size(7000) == 64 * MiB
    assert plan.size(7001) > 64 * MiB  # past 312.5 GiB the part grows on
    assert plan.capacity() >= S3_LARGEST_OBJECT
    assert all(plan.size(n) <= S3_LARGEST_PART for n in range(1, MAX_PARTS + 1))
    assert largest_memory(plan, 312 * GiB) <= MEMORY_BOUND  # 128 MiB of buffers
    assert largest_memory(plan, 313 * GiB) > MEMORY_BOUND


@pytest.mark.parametrize("estimate", [0, GiB, 100 * GiB, 250 * GiB])
def test_an_estimate_that_fits_keeps_the_default_parts(estimate: int) -> None:
    assert plan_parts(estimate) == plan_parts(None)


@pytest.mark.parametrize("gib", [1, 251, 400, 401, 700, 1500, 3000, 5 * 1024])
def test_an_estimated_stream_and_a_quarter_more_fit_in_10000_parts(gib: int) -> None:
    """The estimate x1.25 fits in the planned parts; the memory bound holds up to 500 GiB
    (the 400 GiB estimate) and is passed only when nothing else fits."""
    plan = plan_parts(gib * GiB)
    need = gib * GiB * 5 // 4
    assert plan.planned >= need and plan.capacity() >= need
    assert plan.size(1) <= S3_LARGEST_PART
    if need <= 500 * GiB:
        assert largest_memory(plan, need) <= MEMORY_BOUND
    else:  # the smallest part that fits: half of it would not
        assert largest_memory(plan, need) > MEMORY_BOUND
        smaller = s3_parts.schedule(plan.first // 2)
        assert smaller.capacity(MAX_PARTS) < need or smaller.planned < need


def test_a_larger_estimate_gets_a_larger_first_part() -> None:
    firsts = [plan_parts(gib * GiB).first >> 20 for gib in (100, 300, 700, 1500, 5 * 1024)]
    assert firsts == [32, 64, 128, 256, 1024]


def test_a_stream_larger_than_its_estimate_still_fits() -> None:
    plan = plan_parts(100 * GiB)  # and 2 TiB come
    assert plan.capacity() >= 2 * TiB


def test_the_memory_past_the_bound_is_said_in_one_line_with_why() -> None:
    big = plan_parts(700 * GiB)
    line = why_this_memory(big, 1, 700 * GiB)
    assert line is not None
    assert "parts of 128 MiB" in line and "256 MiB of part buffers" in line
    assert "above the 256 MB bound" in line and "700.0 GiB" in line
    assert why_this_memory(big, 2, 700 * GiB) is None  # said once per size
    unknown = plan_parts(None)
    grown = why_this_memory(unknown, 7001, None)
    assert grown is not None and "passed 312.5 GiB with no size estimate" in grown
    assert why_this_memory(unknown, 1, None) is None  # 96 MiB: within the bound
    assert why_this_memory(unknown, 4001, None) is None  # 128 MiB: within the bound


def test_a_resumed_upload_reads_its_schedule_from_its_first_part() -> None:
    for estimate in (None, 300 * GiB, 700 * GiB, 5 * TiB):
        plan = plan_parts(estimate)
        assert resumed_schedule(plan.size(1)) == plan
    assert resumed_schedule(48 * MiB) is None  # not a part size this version cuts
    assert resumed_schedule(16 * MiB) is None
    assert resumed_schedule(256 * 32 * MiB) is None  # past the largest part


def test_the_writer_grows_its_parts_past_the_old_500_gib_limit(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With a 1-byte base part, the old schedule's 500 GiB is 16,000 bytes: a stream of
    three times that, of unknown size, goes in at most 10,000 parts cut by the plan, and
    the parts past the memory bound (scaled down to 4 bytes) are said once per size."""
    monkeypatch.setattr(s3_parts, "MEMORY_BOUND", 4)
    plan = plan_parts(None, base=1)
    sent: dict[int, bytes] = {}

    def store(number: int, part: bytearray) -> str:
        sent[number] = bytes(part)
        return f'"{hashlib.md5(part).hexdigest()}"'

    data = bytes(range(250)) * 120  # 30,000 bytes
    writer = MultipartWriter(UploadState("k", "u"), store, "test", parts=plan)
    with caplog.at_level(logging.WARNING, logger="zfs_offsite.remote.s3_upload"):
        for start in range(0, len(data), 1000):
            writer.write(data[start : start + 1000])
        writer.close()
    numbers = sorted(sent)
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) <= MAX_PARTS
    assert b"".join(sent[n] for n in numbers) == data
    assert all(len(sent[n]) == plan.size(n) for n in numbers[:-1])
    assert {len(sent[n]) for n in numbers[:-1]} == {1, 2, 4, 8, 16, 32}
    said = [r.getMessage() for r in caplog.records]
    assert [line.split(":")[1].strip() for line in said] == [
        f"parts of {size} bytes from part {first}"
        for size, first in ((4, 7001), (8, 7401), (16, 7801), (32, 8201))
    ]  # 2-byte parts hold 2 x 2 = 4 bytes: within the bound, not said
    assert all("with no size estimate" in line for line in said)
