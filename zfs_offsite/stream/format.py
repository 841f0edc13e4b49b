"""The `zfs send` stream format, as far as this tool reads it: the END record."""

from __future__ import annotations

import struct

RECORD_SIZE = 312  # dmu_replay_record_t


DRR_END = 5


def ends_with_end_record(tail: bytes) -> bool:
    """True if a send stream's last record is DRR_END (either byte order)."""
    if len(tail) < RECORD_SIZE:
        return False
    record = tail[-RECORD_SIZE:]
    return DRR_END in (struct.unpack("<I", record[:4])[0], struct.unpack(">I", record[:4])[0])
