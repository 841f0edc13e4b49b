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


_RULE = re.compile(r"^(?P<bucket>[a-z]+)\s+(?P<count>\d+)(?P<unit>[hdwmy])$")


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


def parse_policy(text: str) -> list[Rule]:
    """Parse `all 7d, daily 30d, ...`; ValueError with one line saying what is wrong."""
    rules = []
    for part in (p.strip() for p in text.split(",")):
        match = _RULE.match(part)
        if not match:
            raise ValueError(
                f"{part!r} is not a rule: write '<period> <age>', e.g. 'daily 30d' "
                "(periods: all, hourly, daily, weekly, monthly, yearly; ages in h, d, w, m, y)"
            )
        try:
            bucket = Bucket(match["bucket"])
        except ValueError:
            raise ValueError(
                f"{part!r}: unknown period {match['bucket']!r}; use all, hourly, daily, "
                "weekly, monthly or yearly"
            ) from None
        count = int(match["count"])
        if count == 0:
            raise ValueError(f"{part!r}: the age must be at least 1")
        rules.append(Rule(bucket, count * UNITS[match["unit"]]))
    if not rules:
        raise ValueError("the policy is empty")
    return rules
