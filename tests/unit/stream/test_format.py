"""The send stream's first and last records: whole, cut between snapshots, and what it names."""

from __future__ import annotations

import struct

import pytest

from zfs_offsite.stream.format import (
    DMU_BACKUP_MAGIC,
    DRR_BEGIN,
    DRR_END,
    RECORD_SIZE,
    end_problem,
    last_snapshot_guid,
)

SNAPSHOT_GUID = 0x1234_5678_9ABC_DEF0


def begin(order: str, hdrtype: int) -> bytes:
    """A BEGIN record: type, payload length, magic, versioninfo (header type in its low bits)."""
    fields = struct.pack(order + "IIQQ", DRR_BEGIN, 0, DMU_BACKUP_MAGIC, (17 << 2) | hdrtype)
    return fields.ljust(RECORD_SIZE, b"\0")


def end(order: str, guid: int) -> bytes:
    """An END record: type, payload length, a 32-byte checksum, the snapshot's GUID."""
    return (
        struct.pack(order + "II", DRR_END, 0) + bytes(32) + struct.pack(order + "Q", guid)
    ).ljust(RECORD_SIZE, b"\0")


@pytest.mark.parametrize("order", ["<", ">"])
def test_a_compound_stream_needs_its_closing_end_record(order: str) -> None:
    head = begin(order, 2)  # `zfs send -I`: one substream per snapshot inside
    data = b"\x07" * 1000
    whole = data + end(order, SNAPSHOT_GUID) + end(order, 0)
    assert end_problem(head, whole[-2 * RECORD_SIZE :]) is None
    assert last_snapshot_guid(head, whole[-2 * RECORD_SIZE :]) == SNAPSHOT_GUID
    cut = data + end(order, SNAPSHOT_GUID)  # died between two snapshots: the inner END is last
    problem = end_problem(head, cut[-2 * RECORD_SIZE :])
    assert problem is not None and "stops after one of its snapshots" in problem


@pytest.mark.parametrize("order", ["<", ">"])
def test_a_single_snapshot_stream_ends_with_one_end_record(order: str) -> None:
    head = begin(order, 1)
    tail = (b"\x07" * 1000 + end(order, SNAPSHOT_GUID))[-2 * RECORD_SIZE :]
    assert end_problem(head, tail) is None
    assert last_snapshot_guid(head, tail) == SNAPSHOT_GUID
    assert end_problem(head, b"\x07" * 2 * RECORD_SIZE) == "the send stream has no END record"


def test_a_stream_without_a_begin_record_is_judged_by_its_last_record_alone() -> None:
    tail = (b"\x07" * 1000 + end("<", 5))[-2 * RECORD_SIZE :]
    assert end_problem(b"not a begin record", tail) is None
    assert last_snapshot_guid(b"not a begin record", tail) is None
