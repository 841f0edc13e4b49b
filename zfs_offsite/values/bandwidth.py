"""Pure: the grammar of `target.bandwidth` and which limit is in force at a time of day.

`"40MB/s"` is one limit all day; `"08:00-20:00 10MB/s, 40MB/s"` is 10 MB/s
between 08:00 and 20:00 and 40 MB/s otherwise (the last entry without a window
is the rate outside every window; without one, outside the windows is
unlimited). A window may wrap midnight (`22:00-06:00`); `24:00` as an end is
midnight, so `00:00-24:00` is the whole day. Times of day are the
process's local time; the limiter (`stream/limit.py`) asks `rate_at` as the
clock runs, so a stream crossing a boundary changes pace.

Units, written before `/s`: `B`; `kB` (= `KB`), `MB`, `GB` in steps of 1000;
`KiB`, `MiB`, `GiB` in steps of 1024; `kbit`, `Mbit`, `Gbit` (bits, steps of
1000), since uplinks are sold in bits. `Mb/s` is refused as ambiguous. `0` or
`unlimited` alone (or unset) is no limit; in a window write `unlimited`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import time

UNITS = {
    "B": 1,
    "kB": 1000,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "kbit": 1000 // 8,
    "Kbit": 1000 // 8,
    "Mbit": 1000**2 // 8,
    "Gbit": 1000**3 // 8,
}
MIN_RATE = 10_000  # bytes/s: below this a night's stream would not end
MAX_RATE = 1000**4  # bytes/s (1 TB/s): above this a number is a typo, not a link's speed
DAY = 24 * 60  # minutes
UNLIMITED = "unlimited"
EXAMPLE = "write e.g. 40MB/s or '08:00-20:00 10MB/s, 40MB/s'"

_ENTRY = re.compile(
    r"^(?:(?P<start>\S+?)\s*-\s*(?P<end>\S+)\s+)?(?P<rate>\S+(?:\s+\S+)?)$",
)
_RATE = re.compile(r"^(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[A-Za-z]+)/s$")
_TIME = re.compile(r"^(?P<hour>\d{1,2}):(?P<minute>\d{2})$")


@dataclass(frozen=True)
class Window:
    """`rate` (bytes/s; None: unlimited) from `start` to `end`, minutes after midnight.

    `start > end` wraps midnight: 22:00-06:00 is 22:00..24:00 and 00:00..06:00.
    """

    start: int
    end: int
    rate: float | None

    def covers(self, minute: float) -> bool:
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end

    def spans(self) -> list[tuple[int, int]]:
        """The window as one or two [from, to) spans within one day."""
        if self.start < self.end:
            return [(self.start, self.end)]
        return [(self.start, DAY), (0, self.end)]

    def __str__(self) -> str:
        return f"{_clock(self.start)}-{_clock(self.end)} {format_rate(self.rate)}"


@dataclass(frozen=True)
class Bandwidth:
    """The parsed setting: windows with their rates, and the rate outside them."""

    windows: tuple[Window, ...] = ()
    default: float | None = None

    @property
    def unlimited(self) -> bool:
        """True when no time of day has a limit."""
        return self.default is None and all(w.rate is None for w in self.windows)

    def rate_at(self, at: time) -> float | None:
        """The limit in bytes/s at local time of day `at`; None: unlimited."""
        minute = at.hour * 60 + at.minute + (at.second + at.microsecond / 1e6) / 60
        for window in self.windows:
            if window.covers(minute):
                return window.rate
        return self.default

    def __str__(self) -> str:
        parts = [str(w) for w in self.windows]
        if self.default is not None or not parts:
            parts.append(format_rate(self.default))
        return ", ".join(parts)


def format_rate(rate: float | None) -> str:
    """A rate as people read it: `40 MB/s`, `819 kB/s`, `unlimited`."""
    if rate is None:
        return UNLIMITED
    if rate >= 1e6:
        return f"{rate / 1e6:.3g} MB/s"
    return f"{rate / 1e3:.3g} kB/s"


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _minutes(text: str, part: str) -> int:
    match = _TIME.match(text)
    if match:
        hour, minute = int(match["hour"]), int(match["minute"])
        if minute < 60 and (hour < 24 or (hour == 24 and minute == 0)):
            return hour * 60 + minute
    raise ValueError(
        f"{part!r}: {text!r} is not a time of day: write HH:MM from 00:00 to 24:00, "
        "e.g. '08:00-20:00 10MB/s'"
    )


def parse_rate(text: str, part: str | None = None) -> float | None:
    """`40MB/s` -> 40e6 bytes/s; `unlimited` -> None. ValueError with one line saying why."""
    part = part or text
    if text.lower() == UNLIMITED:
        return None
    if text == "0":
        raise ValueError(f"{part!r}: write 'unlimited' for a time without a limit")
    match = _RATE.match(text)
    if not match:
        raise ValueError(f"{part!r} is not a rate: {EXAMPLE}")
    unit = match["unit"]
    if unit not in UNITS:
        if unit.lower() in ("kb", "mb", "gb"):
            big = unit[0].upper() if unit[0] != "k" else "k"
            raise ValueError(
                f"{part!r}: {unit}/s is ambiguous: write {big}B/s for bytes or {big}bit/s for bits"
            )
        raise ValueError(
            f"{part!r}: unknown unit {unit!r}: use B, kB, MB, GB (steps of 1000), "
            "KiB, MiB, GiB (steps of 1024) or kbit, Mbit, Gbit, each with /s"
        )
    rate = float(match["number"]) * UNITS[unit]
    if not math.isfinite(rate) or rate > MAX_RATE:  # 400 digits read as float are inf
        raise ValueError(
            f"{part!r}: the highest limit is 1 TB/s; "
            "write 'unlimited' (or leave the setting unset) for no limit"
        )
    if rate < MIN_RATE:
        raise ValueError(
            f"{part!r}: the lowest limit is {format_rate(MIN_RATE)}; "
            "write 'unlimited' (or leave the setting unset) for no limit"
        )
    return rate


def parse_bandwidth(text: str) -> Bandwidth:
    """Parse the setting; ValueError with one line naming the entry and the fix."""
    text = text.strip()
    if text.lower() in ("", "0", UNLIMITED):
        return Bandwidth()
    windows: list[Window] = []
    default: float | None = None
    entries = [e.strip() for e in text.split(",")]
    if "" in entries:
        raise ValueError(
            f"{text!r} has an empty entry: separate entries with one comma, "
            "e.g. '08:00-20:00 10MB/s, 40MB/s'"
        )
    for index, part in enumerate(entries):
        match = _ENTRY.match(part)
        if not match:
            raise ValueError(f"{part!r} is not a rate: {EXAMPLE}")
        rate = parse_rate(match["rate"].replace(" ", ""), part)
        if match["start"] is None:
            if index != len(entries) - 1:
                raise ValueError(
                    f"{part!r}: only the last entry may go without a time window "
                    "(it is the rate outside the windows): write e.g. "
                    "'08:00-20:00 10MB/s, 40MB/s'"
                )
            default = rate
            continue
        start, end = _minutes(match["start"], part), _minutes(match["end"], part)
        whole_day = start == 0 and end == DAY  # 00:00-24:00
        if start % DAY == end % DAY and not whole_day:
            raise ValueError(
                f"{part!r}: the window is empty: for all day write the rate alone, e.g. 40MB/s"
            )
        windows.append(Window(start % DAY, end % DAY or DAY, rate))
    _check_overlaps(windows)
    return Bandwidth(tuple(windows), default)


def _check_overlaps(windows: list[Window]) -> None:
    for i, first in enumerate(windows):
        for second in windows[i + 1 :]:
            if any(a < d and c < b for a, b in first.spans() for c, d in second.spans()):
                raise ValueError(
                    f"windows {_clock(first.start)}-{_clock(first.end)} and "
                    f"{_clock(second.start)}-{_clock(second.end)} overlap: "
                    "give each time of day one rate"
                )
