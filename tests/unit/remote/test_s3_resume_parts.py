"""Which stored parts of an earlier S3 upload a resume keeps (pure: no store).

An upload is continued only where a part ends (`parts_before`), and a stored part
is kept only if the regenerated stream's part has its size and MD5 (`PartCheck`).
"""

from __future__ import annotations

import hashlib
import os

import pytest

from zfs_offsite.remote import s3_parts
from zfs_offsite.remote.s3_parts import plan_parts
from zfs_offsite.remote.s3_upload import PartCheck, StoredPart


def parts_before(offset: int) -> int | None:
    """Whole parts in `offset` bytes of a stream of unknown size (the default schedule)."""
    return plan_parts(None).parts_before(offset)


MiB = 1 << 20


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3_parts, "BASE_PART", 4)
    monkeypatch.setattr(s3_parts, "GROW_AFTER", 3)
    monkeypatch.setattr(s3_parts, "DOUBLED_UNTIL", 100)


def stored(data: bytes) -> list[StoredPart]:
    """The parts an upload of `data` stores, cut at `part_size` as the writer cuts them."""
    parts, start, number = [], 0, 1
    while start < len(data):
        piece = data[start : start + plan_parts(None).size(number)]
        parts.append(StoredPart(number, len(piece), f'"{hashlib.md5(piece).hexdigest()}"'))
        start += len(piece)
        number += 1
    return parts


def test_an_upload_is_continued_only_where_a_part_ends() -> None:
    assert parts_before(0) == 0
    assert parts_before(64 * MiB) == 2  # one checkpoint chunk: two default parts
    assert parts_before(64 * MiB + 1) is None
    grown = s3_parts.GROW_AFTER * s3_parts.BASE_PART
    assert parts_before(grown) == s3_parts.GROW_AFTER
    assert parts_before(grown + 2 * s3_parts.BASE_PART) == s3_parts.GROW_AFTER + 1
    assert parts_before(grown + s3_parts.BASE_PART) is None  # inside a grown part


def test_parts_after_growth_are_counted_at_their_own_size(small_parts: None) -> None:
    assert [parts_before(n) for n in (4, 8, 12, 20, 28)] == [1, 2, 3, 4, 5]
    assert parts_before(16) is None


def test_every_matching_part_is_kept_in_any_piece_sizes(small_parts: None) -> None:
    data = os.urandom(24)
    check = PartCheck(stored(data), "here")
    start = 0
    for size in (1, 5, 3, 7, 8):  # parts of 4, 4, 4, then 8 (grown), 4 of the next
        assert check.feed(data[start : start + size]) is None
        start += size
    assert check.matched == 20 and len(stored(data)) == 5


def test_a_part_with_other_bytes_stops_the_keeping_at_that_part(small_parts: None) -> None:
    data = bytearray(os.urandom(12))
    parts = stored(bytes(data))
    data[9] ^= 0xFF  # inside part 3: the regenerated stream differs from what is stored
    check = PartCheck(parts, "here")
    why = check.feed(bytes(data))
    assert why is not None and "part 3" in why and "MD5" in why
    assert check.matched == 8  # parts 1 and 2 are kept


def test_a_missing_or_short_part_is_not_kept(small_parts: None) -> None:
    data = os.urandom(12)
    parts = stored(data)
    gone = PartCheck([parts[0], parts[2]], "here")
    assert "part 2 is not stored" in (gone.feed(data) or "")
    assert gone.matched == 4
    short = PartCheck([parts[0], StoredPart(2, 3, parts[1].etag)], "here")
    assert "part 2 holds 3 bytes on the store, not 4" in (short.feed(data) or "")
    assert short.matched == 4


def test_a_differing_first_part_keeps_nothing(small_parts: None) -> None:
    check = PartCheck(stored(os.urandom(8)), "here")
    assert check.feed(os.urandom(8)) is not None
    assert check.matched == 0
