"""The part sizes of an S3 multipart upload: any stream up to S3's 5 TiB object limit
within its 10,000 parts, in part buffers that are bounded and said (issue 22). Pure.

A schedule is a family named by its first part's size, a power-of-two multiple of
the base part (32 MiB):

- the base family (no estimate, or an estimate that fits it): 4,000 base parts,
  3,000 of twice that, as before this plan: 312.5 GiB in 96-128 MiB of
  buffers; then the part doubles every 400 parts (128 MiB, 256 MiB, ... up to
  4 GiB, S3 allows 5), so 10,000 parts hold 5.7 TiB;
- a larger first part (an estimate too large for the base family): 8,000 parts
  of it, then the same doubling, so a stream larger than its estimate still fits.

The estimate (`zfs send -nP`) is taken x1.25: a stream can come out larger (a
raw or uncompressed send, age's overhead, an estimate of a changing dataset).

Memory is (parts in flight + 1 filling) x part size: 2 in flight of the base
part, 1 of any larger. It stays within MEMORY_BOUND (256 MB) while parts are at
most 64 MiB, that is for every stream up to 500 GiB within 1.25x its estimate
(312.5 GiB without one); a larger stream gets larger parts anyway (a backup must not fail
for being big) and the writer says in one line how much it holds and why.

Because the family is named by part 1's size, an upload continued by another
process (`S3Store.open_append`) reads its schedule from its stored part 1, never
from its own, possibly different, estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MiB = 1 << 20
BASE_PART = 32 * MiB  # the default base part: S3's smallest is 5 MiB
MAX_PARTS = 10_000  # S3's limit per upload
GROW_AFTER = 4000  # base family: base parts up to here (125 GiB)
DOUBLED_UNTIL = 7000  # base family: parts of twice the base up to here (312.5 GiB in all)
PLANNED = 8000  # a larger first part: this many parts of it before any growth
GROWTH_STEP = 400  # after the planned parts, the part doubles every this many
LARGEST_FACTOR = 128  # parts at most 128 x base: 4 GiB at 32 MiB (S3 allows 5 GiB)
MEMORY_BOUND = 256 * 1000 * 1000  # bytes of part buffers by default: 256 MB
MARGIN = 1.25  # the estimate is taken x1.25: a stream can come out larger


@dataclass(frozen=True)
class PartSchedule:
    """The size of every part 1..MAX_PARTS of one upload, as (size, count) runs."""

    base: int
    first: int
    runs: tuple[tuple[int, int], ...]

    def size(self, number: int) -> int:
        """The size of part `number` (from 1); parts past MAX_PARTS are sized as the last."""
        seen = 0
        for size, count in self.runs:
            seen += count
            if number <= seen:
                return size
        return self.runs[-1][0]

    def parts_before(self, offset: int) -> int | None:
        """How many whole parts make the first `offset` bytes; None if `offset` falls inside
        a part (an upload is continued only where a part ends) or past the last part."""
        parts = 0
        for size, count in self.runs:
            if offset <= size * count:
                return parts + offset // size if offset % size == 0 else None
            offset -= size * count
            parts += count
        return None

    def capacity(self, parts: int = MAX_PARTS) -> int:
        """Bytes held by the first `parts` parts."""
        total, left = 0, parts
        for size, count in self.runs:
            total += size * min(count, left)
            left -= min(count, left)
        return total

    @property
    def planned(self) -> int:
        """Bytes held before the part grows past the family's planned size."""
        return self.capacity(DOUBLED_UNTIL if self.first == self.base else PLANNED)

    def in_flight(self, size: int) -> int:
        """Parts of `size` bytes sent at once: two of the base size, one once they grew."""
        return 2 if size <= self.base else 1

    def memory(self, size: int) -> int:
        """The part buffers held while parts of `size` bytes go: in flight and one filling."""
        return (self.in_flight(size) + 1) * size


def schedule(first: int, base: int | None = None) -> PartSchedule:
    """The family whose part 1 holds `first` bytes (see the module); `base` defaults to
    BASE_PART (tests pass small parts)."""
    base = base or BASE_PART
    largest = LARGEST_FACTOR * base
    if first == base:
        runs = [(base, GROW_AFTER), (2 * base, DOUBLED_UNTIL - GROW_AFTER)]
    else:
        runs = [(first, PLANNED)]
    left = MAX_PARTS - sum(count for _, count in runs)
    size = runs[-1][0]
    while left > 0:
        size = min(2 * size, largest)
        count = left if size == largest else min(GROWTH_STEP, left)
        runs.append((size, count))
        left -= count
    return PartSchedule(base, first, tuple(_merged(runs)))


def _merged(runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Adjacent runs of one size as one."""
    merged: list[tuple[int, int]] = []
    for size, count in runs:
        if merged and merged[-1][0] == size:
            merged[-1] = (size, merged[-1][1] + count)
        else:
            merged.append((size, count))
    return merged


def plan_parts(estimate: int | None, base: int | None = None) -> PartSchedule:
    """The schedule for a stream of about `estimate` bytes (None: not known): the base
    family when the estimate x MARGIN fits its planned parts, else the smallest first part
    whose planned parts hold it."""
    base = base or BASE_PART
    if estimate is None:
        return schedule(base, base)
    need = math.ceil(max(estimate, 0) * MARGIN)
    factor = 1
    while factor < LARGEST_FACTOR:
        planned = schedule(factor * base, base)
        if planned.planned >= need:
            return planned
        factor *= 2
    return schedule(LARGEST_FACTOR * base, base)


def resumed_schedule(first_part: int, base: int | None = None) -> PartSchedule | None:
    """The schedule an upload started with, from its stored part 1's size; None if that is
    no first part this version cuts (an upload of another version: start afresh)."""
    base = base or BASE_PART
    factor = first_part // base if base else 0
    if first_part % base or factor < 1 or factor > LARGEST_FACTOR or factor & (factor - 1):
        return None
    return schedule(first_part, base)


def why_this_memory(plan: PartSchedule, number: int, estimate: int | None) -> str | None:
    """One line on the memory parts from part `number` on take, when it passes MEMORY_BOUND
    and part `number` is the first of its size (else None): how much, and why."""
    size = plan.size(number)
    if plan.memory(size) <= MEMORY_BOUND or (number > 1 and plan.size(number - 1) == size):
        return None
    before = plan.capacity(number - 1)
    held = f"up to {_bytes(plan.memory(size))} of part buffers"
    above = f"above the {MEMORY_BOUND // 1000**2} MB bound"
    if number == 1:
        about = f"about {estimate / 2**30:.1f} GiB" if estimate is not None else "a large stream"
        why = f"a stream of {about} (x{MARGIN} margin) fits S3's {MAX_PARTS:,} parts only so"
    elif estimate is None:
        why = f"the stream passed {before / 2**30:.1f} GiB with no size estimate"
    else:
        why = f"the stream passed {before / 2**30:.1f} GiB, beyond its estimate"
    return f"parts of {_bytes(size)} from part {number}: {held}, {above}: {why}"


def _bytes(size: int) -> str:
    """`size` in whole MiB where it is (always, but in tests' small parts)."""
    return f"{size // MiB} MiB" if size % MiB == 0 else f"{size} bytes"
