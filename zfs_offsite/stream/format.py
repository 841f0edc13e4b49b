"""The `zfs send` stream format, as far as this tool reads it: its first and last records.

A stream opens with a BEGIN record and closes with an END record. `zfs send -I`
(and -R) writes a compound stream: an outer BEGIN, then one BEGIN ... END
substream per snapshot, then an outer END of its own. A compound stream cut
between two snapshots (a seed run that died there, with gzip closing the file
cleanly) still ends in an END record, the inner one: only the pair of ENDs
proves it whole. The END that closes a snapshot names it (`drr_toguid`), so a
file can also be checked against the snapshot its name claims.
"""

from __future__ import annotations

import struct

RECORD_SIZE = 312  # dmu_replay_record_t

DRR_BEGIN = 0
DRR_END = 5
DMU_BACKUP_MAGIC = 0x2F5BACBAC
DMU_COMPOUNDSTREAM = 2  # DMU_GET_STREAM_HDRTYPE(drr_versioninfo), the low two bits
END_TOGUID = slice(40, 48)  # after drr_type, drr_payloadlen and a 32-byte checksum


def ends_with_end_record(tail: bytes) -> bool:
    """True if a send stream's last record is DRR_END (either byte order)."""
    if len(tail) < RECORD_SIZE:
        return False
    record = tail[-RECORD_SIZE:]
    return DRR_END in (struct.unpack("<I", record[:4])[0], struct.unpack(">I", record[:4])[0])


def byte_order(head: bytes) -> str | None:
    """ "<" or ">" from a BEGIN record's magic; None if `head` opens with no BEGIN record."""
    if len(head) < 24:
        return None
    for order in "<>":
        kind, _ = struct.unpack(order + "II", head[:8])
        (magic,) = struct.unpack(order + "Q", head[8:16])
        if kind == DRR_BEGIN and magic == DMU_BACKUP_MAGIC:
            return order
    return None


def is_compound(head: bytes) -> bool:
    """True if the stream's BEGIN record opens a compound stream (`zfs send -I`, -R)."""
    order = byte_order(head)
    if order is None:
        return False
    (versioninfo,) = struct.unpack(order + "Q", head[16:24])
    return versioninfo & 0x3 == DMU_COMPOUNDSTREAM


def end_problem(head: bytes, tail: bytes) -> str | None:
    """Why the stream is not closed as its BEGIN says it must be; None if it is.

    `head` holds the stream's first bytes and `tail` its last two records' worth.
    A head that opens with no BEGIN record is judged by its last record alone.
    """
    if not ends_with_end_record(tail):
        return "the send stream has no END record"
    if is_compound(head) and not ends_with_end_record(tail[:-RECORD_SIZE]):
        return (
            "the send stream stops after one of its snapshots (it holds several, and the END "
            "record that closes them all is missing)"
        )
    return None


def last_snapshot_guid(head: bytes, tail: bytes) -> int | None:
    """The GUID the END closing the stream's last snapshot names; None if it names none.

    Call only for a stream `end_problem` passes.
    """
    order = byte_order(head)
    if order is None:
        return None
    record = tail[-2 * RECORD_SIZE : -RECORD_SIZE] if is_compound(head) else tail[-RECORD_SIZE:]
    (guid,) = struct.unpack(order + "Q", record[END_TOGUID])
    return guid or None
