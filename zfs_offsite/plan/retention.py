"""Retention: which restore points a policy keeps, and which files may go. Pure.

A policy is a grid over restore points, e.g. `all 7d, daily 30d, weekly 12w,
monthly 12m`: every point younger than 7 days, the newest point of each day
for 30 days, of each ISO week for 12 weeks, of each month for 12 months. The
newest restore point is always kept. A file is deleted only if it belongs to
the chain of a point that is not kept and to no chain of a point that is;
files in no restorable chain (corrupt, broken) are never touched by pruning.

A partial upload with checkpoints beside it can be resumed, so it (and its
checkpoint file) is kept longer than a dead partial: a full cut on a Saturday
must survive the Sunday prune (a 2 TB full at 10 MB/s takes over two nights).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from zfs_offsite.archive.model import ArchiveFile
from zfs_offsite.plan.chains import RestorePoint, restore_points
from zfs_offsite.values.entries import StoreEntry
from zfs_offsite.values.partials import checkpoint_name, is_checkpoint, split_partial
from zfs_offsite.values.policy import Bucket, Rule

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
    # Why a file the policy would delete is kept (the store's retention): filename -> why.
    kept_reasons: dict[str, str] = field(default_factory=dict)
    untouched: list[ArchiveFile] = field(default_factory=list)  # in no restorable chain
    stale_partials: list[StoreEntry] = field(default_factory=list)
    # Partial uploads with checkpoints, kept for a resume.
    resumable_partials: list[StoreEntry] = field(default_factory=list)
    # Why each stale or resumable partial is deleted or kept: name -> why.
    partial_reasons: dict[str, str] = field(default_factory=dict)
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
    resumable_after: timedelta = timedelta(days=7),
    locked: Mapping[str, datetime] | None = None,
) -> PrunePlan:
    """Decide per file: needed by a kept point's chain, deletable, or not ours to judge.

    A partial is stale `stale_after` its last write; one with checkpoints (and the
    checkpoint file) only `resumable_after` the pair's last write. A file `locked`
    (filename -> the end of its retention on the store) after `now` is kept, and
    so is the chain it stands on: what prune leaves must restore.
    """
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
    _hold_locked(plan, dropped, {k: v for k, v in (locked or {}).items() if v > now})
    _judge_partials(plan, partials, now, stale_after, resumable_after)
    return plan


def lock_reason(until: datetime) -> str:
    """Why a file under retention is kept: the moment it ends, in UTC."""
    return f"object lock until {until.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _hold_locked(
    plan: PrunePlan, dropped: Sequence[RestorePoint], locked: Mapping[str, datetime]
) -> None:
    """Move the files under retention, and the chain files they need, from delete to keep."""
    doomed = {f.filename for f in plan.delete}
    reasons = {name: lock_reason(until) for name, until in locked.items() if name in doomed}
    for point in dropped:
        for index, file in enumerate(point.chain):
            if file.filename in locked and file.filename in doomed:
                why = f"needed by {file.filename} ({lock_reason(locked[file.filename])})"
                for parent in point.chain[:index]:
                    reasons.setdefault(parent.filename, why)
    plan.keep += [f for f in plan.delete if f.filename in reasons]
    plan.delete = [f for f in plan.delete if f.filename not in reasons]
    plan.kept_reasons.update(reasons)


def _days(limit: timedelta) -> str:
    days = limit / timedelta(days=1)
    return f"{days:g} day" + ("" if days == 1 else "s")


def _judge_partials(
    plan: PrunePlan,
    partials: Sequence[StoreEntry],
    now: datetime,
    stale_after: timedelta,
    resumable_after: timedelta,
) -> None:
    """Fill the plan's stale and resumable partials; a resumable pair goes as one."""
    by_name = {p.name: p for p in partials}
    pairs: dict[str, list[StoreEntry]] = {}  # data partial -> it and its checkpoint file
    for p in partials:
        if split_partial(p.name) is not None and checkpoint_name(p.name) in by_name:
            pairs[p.name] = [p, by_name[checkpoint_name(p.name)]]
    in_pair = {e.name for pair in pairs.values() for e in pair}
    for pair in pairs.values():
        newest = max(datetime.fromtimestamp(e.mtime, UTC) for e in pair)
        if now - newest > resumable_after:
            why = f"partial upload with checkpoints, older than {_days(resumable_after)}"
            plan.stale_partials += pair
        else:
            why = f"partial upload with checkpoints, kept {_days(resumable_after)} for a resume"
            plan.resumable_partials += pair
        plan.partial_reasons.update(dict.fromkeys((e.name for e in pair), why))
    for p in partials:
        if p.name in in_pair or now - datetime.fromtimestamp(p.mtime, UTC) <= stale_after:
            continue
        plan.stale_partials.append(p)
        plan.partial_reasons[p.name] = (
            "checkpoints of a gone partial upload"
            if is_checkpoint(p.name)
            else "stale partial upload"
        )
