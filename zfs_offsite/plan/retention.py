"""Retention: which restore points a policy keeps, and which files may go. Pure.

A policy is a grid over restore points, e.g. `all 7d, daily 30d, weekly 12w,
monthly 12m`: every point younger than 7 days, the newest point of each day
for 30 days, of each ISO week for 12 weeks, of each month for 12 months. The
newest restore point is always kept. A file is deleted only if it belongs to
the chain of a point that is not kept and to no chain of a point that is;
files in no restorable chain (corrupt, broken) are never touched by pruning.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from zfs_offsite.archive.model import ArchiveFile
from zfs_offsite.plan.chains import RestorePoint, restore_points
from zfs_offsite.plan.policy import Bucket, Rule
from zfs_offsite.remote.entries import StoreEntry

_NAME_TIME = re.compile(r"(?P<date>(?:19|20)\d{6})[.\-_T]?(?P<time>\d{4})?")


PERIOD: dict[Bucket, Callable[[datetime], tuple[int, ...]]] = {
    Bucket.HOURLY: lambda t: (t.year, t.month, t.day, t.hour),
    Bucket.DAILY: lambda t: (t.year, t.month, t.day),
    Bucket.WEEKLY: lambda t: tuple(t.isocalendar())[:2],
    Bucket.MONTHLY: lambda t: (t.year, t.month),
    Bucket.YEARLY: lambda t: (t.year,),
}


def point_time(point: RestorePoint) -> datetime:
    """When the snapshot was taken: sidecar, else a date in its name, else upload time."""
    last = point.chain[-1]
    if last.sidecar is not None and last.sidecar.snapshot_creation:
        return datetime.fromtimestamp(last.sidecar.snapshot_creation, UTC)
    match = _NAME_TIME.search(point.snapshot)
    if match:
        try:
            return datetime.strptime(
                match["date"] + (match["time"] or "0000"), "%Y%m%d%H%M"
            ).replace(tzinfo=UTC)
        except ValueError:
            pass
    return datetime.fromtimestamp(last.archived_at, UTC)


def kept_points(
    points: Sequence[RestorePoint], rules: Sequence[Rule] | None, now: datetime
) -> list[RestorePoint]:
    """The points the policy keeps, oldest first: always the newest; all without a policy."""
    if not points:
        return []
    timed = sorted(((point_time(p), i, p) for i, p in enumerate(points)), key=lambda t: t[:2])
    if rules is None:
        return [p for _, _, p in timed]
    keep: set[int] = {timed[-1][1]}
    for rule in rules:
        newest_per_period: dict[tuple[int, ...], int] = {}
        for when, index, _ in timed:
            if now - when > rule.age:
                continue
            if rule.bucket is Bucket.ALL:
                keep.add(index)
            else:
                newest_per_period[PERIOD[rule.bucket](when)] = index  # later ones win
        keep.update(newest_per_period.values())
    return [p for _, i, p in timed if i in keep]


@dataclass
class PrunePlan:
    """What a prune of one member will keep and delete, and why."""

    member: str
    kept: list[RestorePoint] = field(default_factory=list)
    dropped: list[RestorePoint] = field(default_factory=list)
    delete: list[ArchiveFile] = field(default_factory=list)  # dependents first
    keep: list[ArchiveFile] = field(default_factory=list)
    untouched: list[ArchiveFile] = field(default_factory=list)  # in no restorable chain
    stale_partials: list[StoreEntry] = field(default_factory=list)
    # Entries that are no backup (foreign files, directories, symlinks): name -> why.
    ignored: dict[str, str] = field(default_factory=dict)

    @property
    def bytes_freed(self) -> int:
        return sum(f.size for f in self.delete) + sum(p.size for p in self.stale_partials)


def plan_prune(
    member: str,
    files: Sequence[ArchiveFile],
    partials: Sequence[StoreEntry],
    rules: Sequence[Rule] | None,
    now: datetime,
    stale_after: timedelta = timedelta(days=1),
) -> PrunePlan:
    """Decide per file: needed by a kept point's chain, deletable, or not ours to judge."""
    points = restore_points(files)
    kept = kept_points(points, rules, now)
    kept_ids = {id(p) for p in kept}
    dropped = [p for p in points if id(p) not in kept_ids]
    needed = {f.filename for p in kept for f in p.chain}
    chained = {f.filename for p in points for f in p.chain}
    plan = PrunePlan(member, kept=kept, dropped=dropped)
    for f in files:
        if f.filename in needed:
            plan.keep.append(f)
        elif f.filename in chained:
            plan.delete.append(f)
        else:
            plan.untouched.append(f)
    plan.delete.sort(key=lambda f: f.archived_at, reverse=True)
    plan.stale_partials = [
        p for p in partials if now - datetime.fromtimestamp(p.mtime, UTC) > stale_after
    ]
    return plan
