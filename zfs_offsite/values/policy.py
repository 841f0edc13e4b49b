"""Pure: the retention policy's grammar (`daily 7d, weekly 8w, ...`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

UNITS = {
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
    "m": timedelta(days=31),  # generous: never early
    "y": timedelta(days=366),
}
# The longest age any rule or look-back may name: 100 years is past every lab's
# retention, and far below what `datetime` can subtract from today.
MAX_AGE = 100 * UNITS["y"]
MAX_AGE_TEXT = "100 years (100y, 1180m, 5228w, 36600d)"
_AGE = re.compile(r"^(?P<count>\d+)(?P<unit>[hdwmy])$")


_RULE = re.compile(r"^(?P<bucket>[a-z]+)\s+(?P<age>\d+[hdwmy])$")


class Bucket(StrEnum):
    ALL = "all"
    HOURLY = "hourly"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    YEARLY = "yearly"


@dataclass(frozen=True)
class Rule:
    """Keep one point per `bucket` period (every point for `all`) younger than `age`."""

    bucket: Bucket
    age: timedelta


def parse_age(text: str) -> timedelta:
    """`30d`, `12h`, `8w`, `12m`, `2y` -> its timedelta; ValueError naming the range.

    The one duration grammar: retention rules and `history --since` both read it,
    so a number too large for a date is refused here, once, not as an OverflowError.
    """
    age, problem = _age(text)
    if age is None:
        raise ValueError(f"{_short(text)!r}: {problem}")
    return age


def _short(text: str) -> str:
    """Text for an error line: a pasted run of digits must not fill the terminal."""
    return text if len(text) <= 40 else text[:37] + "..."


def _age(text: str) -> tuple[timedelta | None, str]:
    match = _AGE.match(text.strip())
    if not match:
        return None, "not an age: write a whole number and h, d, w, m or y, e.g. 30d"
    digits = match["count"].lstrip("0") or "0"
    count = int(digits) if len(digits) <= 9 else None  # more digits is over any bound
    if count == 0:
        return None, "the age must be at least 1"
    if count is None or count * UNITS[match["unit"]] > MAX_AGE:
        return None, f"the age must be at most {MAX_AGE_TEXT}"
    return count * UNITS[match["unit"]], ""


def parse_policy(text: str) -> list[Rule]:
    """Parse `all 7d, daily 30d, ...`; ValueError with one line saying what is wrong."""
    rules = []
    for part in (p.strip() for p in text.split(",")):
        match = _RULE.match(part)
        if not match:
            raise ValueError(
                f"{_short(part)!r} is not a rule: write '<period> <age>', e.g. 'daily 30d' "
                "(periods: all, hourly, daily, weekly, monthly, yearly; ages in h, d, w, m, y)"
            )
        try:
            bucket = Bucket(match["bucket"])
        except ValueError:
            raise ValueError(
                f"{part!r}: unknown period {match['bucket']!r}; use all, hourly, daily, "
                "weekly, monthly or yearly"
            ) from None
        age, problem = _age(match["age"])
        if age is None:
            raise ValueError(f"{_short(part)!r}: {problem}")
        rules.append(Rule(bucket, age))
    if not rules:
        raise ValueError("the policy is empty")
    return rules
