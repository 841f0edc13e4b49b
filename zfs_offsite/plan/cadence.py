"""The full cadence: how old a chain is, when its next full falls due, how many a night.

Two rules live here because each decides how much crosses the off-site link:

- **The age rule.** A chain's age (and its incremental count) counts from the
  first file this tool wrote into it, i.e. the first file in the chain with a
  sidecar, from the moment its upload started. A chain with no such file
  (seed-era, adopted from the old script) is adopted by tonight's run: its
  age is zero. So a migration extends the seed archive with an incremental,
  and a full falls due only after this tool has extended a chain for
  `after_days` (or `after_incrementals` runs). File dates on the server say
  nothing: copies and old scripts set them to anything.
- **The quota.** Fulls that fall due by cadence are spread over the nights: at
  most `full_quota(...)` new chains a run, so no night carries every member.

Pure: no I/O, no clock; the caller passes `now`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from zfs_offsite.archive.model import ArchiveFile

if TYPE_CHECKING:
    from zfs_offsite.settings import FullSettings

DAY = 86400.0
# A nightly run may plan a little earlier in the evening than the upload that
# began the chain started; without slack a 30-day cadence would fire on night 31.
SLACK_DAYS = 0.25


@dataclass(frozen=True)
class ChainAge:
    """How long this tool has been extending a chain, and with how many incrementals."""

    since: float  # epoch seconds the age counts from
    days: float
    incrementals: int  # incrementals this tool wrote into the chain
    adopted: bool  # no file of this tool in it yet: it is adopted tonight
    tool_full: bool  # this tool wrote the chain's full


def _started(file: ArchiveFile) -> float:
    """When the file's upload started (sidecar), else when it was stored."""
    if file.sidecar is not None:
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(file.sidecar.started).timestamp()
    return file.archived_at


def chain_age(chain: Sequence[ArchiveFile], now: float) -> ChainAge:
    """The age rule: from the first file with a sidecar, else from `now` (adopted)."""
    for index, file in enumerate(chain):
        if file.sidecar is not None:
            since = min(_started(file), now)
            added = sum(1 for f in chain[index:] if not f.name.is_full)
            return ChainAge(since, (now - since) / DAY, added, False, index == 0)
    return ChainAge(now, 0.0, 0, True, False)


@dataclass(frozen=True)
class FullDue:
    """Where a member's chain stands against the cadence; shown in the plan's reason."""

    due: bool
    overdue: float  # nights past the limit (negative: not yet)
    why: str  # e.g. "the chain is 31.0 days old (limit 30)"
    left: str = ""  # until it is due: "12 d" or "5 runs"; empty when due
    adopted: bool = False

    @property
    def rank(self) -> int:
        """Whole nights overdue: what the quota orders by, so that members planned a few
        milliseconds apart (one `now` each) do not reorder; equal ranks go by name."""
        return math.floor(self.overdue)

    @property
    def when(self) -> str:
        """`full due now`, `full due in 12 d`, `full due in 5 runs`; an adopted chain says so."""
        if self.due:
            return "full due now"
        text = f"full due in {self.left}"
        if self.adopted:
            return f"{text}: the chain has no file of this tool yet, its age counts from now"
        return text


@dataclass(frozen=True)
class FullCadence:
    """Start a new chain once this tool has added this many incrementals or days to it."""

    after_incrementals: int | None = None
    after_days: float | None = None

    @property
    def period(self) -> float | None:
        """The shorter limit in nights (one run a night), None without a cadence."""
        limits = [x for x in (self.after_incrementals, self.after_days) if x is not None]
        return min(limits) if limits else None

    def status(self, chain: Sequence[ArchiveFile], now: float) -> FullDue | None:
        """The chain's standing (full first), or None when no cadence is set."""
        if self.period is None:
            return None
        age = chain_age(chain, now)
        # (overdue in nights, nights or runs left, why, unit)
        measures: list[tuple[float, int, str, str]] = []
        if self.after_incrementals is not None:
            over = age.incrementals - self.after_incrementals
            since = "since the last full" if age.tool_full else "by this tool in an adopted chain"
            why = f"{age.incrementals} incrementals {since} (limit {self.after_incrementals})"
            measures.append((float(over), max(0, -over), why, "runs"))
        if self.after_days is not None:
            slack = min(SLACK_DAYS, self.after_days / 4)
            left = self.after_days - slack - age.days
            origin = "" if age.tool_full else ", counted from this tool's first file in it"
            why = f"the chain is {age.days:.1f} days old{origin} (limit {self.after_days:g})"
            measures.append((age.days - self.after_days, max(0, math.ceil(left)), why, "d"))
        due = [m for m in measures if m[1] == 0]
        if due:
            overdue, _, why, _ = max(due)
            return FullDue(True, overdue, why, "", age.adopted)
        overdue, left_n, why, unit = min(measures, key=lambda m: m[1])
        unit = "run" if unit == "runs" and left_n == 1 else unit
        return FullDue(False, overdue, why, f"{left_n} {unit}", age.adopted)


def nightly_quota(members: int, cadence: FullCadence, max_per_night: int | None = None) -> int:
    """How many new chains one run may start: `max_per_night`, else ceil(members / period).

    The default spreads one period's fulls evenly over its nights.
    """
    if max_per_night is not None:
        return max_per_night
    period = cadence.period
    if period is None:
        return max(1, members)
    return max(1, math.ceil(members / period))


def full_quota(full: FullSettings, members: int) -> int:
    """The quota from settings for a source with `members` members (all of them, not a subset)."""
    cadence = FullCadence(full.after_incrementals, full.after_days)
    return nightly_quota(members, cadence, full.max_per_night)


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
