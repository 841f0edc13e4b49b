"""Prune a member's directory on the backup server by the retention policy.

Deletion order keeps the archive consistent if a prune is interrupted: files
go dependents first (newest first), each backup file before its sidecars, so
what remains is always a set of complete chains plus, at worst, a sidecar
without its file (removed by the next prune). Only regular files are ever
deleted: a directory or symlink in a member's directory is left alone and
reported, as are files whose sidecars cannot establish what they are.

On a store with retention (S3 Object Lock), a file whose retention has not
ended is kept, with the chain it stands on, and the plan says until when; a
delete the store still refuses (a default retention, a race) keeps that file
and the prune goes on: it never stops half-way on a locked object.

Prune writes (it deletes files), so it holds the member's writer lock while it
reads the directory and deletes, as a backup does while it commits: whoever
calls it, a task, the CLI or a script, gets the lock without asking for it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta

from zfs_offsite.archive.index import is_file
from zfs_offsite.archive.lock import member_lock
from zfs_offsite.archive.names import SIDECAR_SUFFIXES, classify, sidecar_names
from zfs_offsite.jobs.archive_read import read_archive
from zfs_offsite.plan.retention import PrunePlan, lock_reason, plan_prune
from zfs_offsite.remote.store import RetainedError, Retaining, Store
from zfs_offsite.settings import Settings
from zfs_offsite.values.policy import Rule

log = logging.getLogger(__name__)


def prune_member(
    settings: Settings,
    store: Store,
    member: str,
    *,
    dry_run: bool = False,
    run: str | None = None,
    now: datetime | None = None,
) -> PrunePlan:
    """Plan (and unless `dry_run`, carry out) the prune of one member directory.

    The policy and the partial uploads' ages come from `settings.retention`.
    Without a policy no backup file is deleted; stale partial uploads and
    orphaned sidecars are still cleaned up. A partial upload with checkpoints
    waits `resumable_partial_days` for its resume instead of `stale_partial_hours`.
    A real prune holds the member's writer lock (`settings.lock`; `run` names
    the holder) from the read to the last delete, so it never deletes under a
    backup that is committing; a dry run reads without it.
    """
    retention = settings.retention
    lock = nullcontext() if dry_run else member_lock(settings.lock, store, member, "prune", run)
    with lock:
        return _prune(
            store,
            member,
            retention.rules,
            now or datetime.now(UTC),
            stale_after=timedelta(hours=retention.stale_partial_hours),
            resumable_after=timedelta(days=retention.resumable_partial_days),
            dry_run=dry_run,
        )


def _prune(
    store: Store,
    member: str,
    rules: Sequence[Rule] | None,
    now: datetime,
    *,
    stale_after: timedelta,
    resumable_after: timedelta,
    dry_run: bool,
) -> PrunePlan:
    archive = read_archive(store, member, None)
    plan = plan_prune(
        member, archive.files, archive.partials, rules, now, stale_after, resumable_after
    )
    if plan.delete and isinstance(store, Retaining):
        locked = _retained(store, member, plan, set(archive.entries), now)
        plan = plan_prune(
            member,
            archive.files,
            archive.partials,
            rules,
            now,
            stale_after,
            resumable_after,
            locked,
        )
    plan.ignored = dict(archive.reasons)
    if dry_run:
        return plan
    for file in list(plan.delete):
        try:
            store.remove(f"{member}/{file.filename}")
            for sidecar in sidecar_names(file.filename):
                entry = archive.entries.get(sidecar)
                if entry is not None and is_file(entry):
                    store.remove(f"{member}/{sidecar}")
        except RetainedError as exc:
            _kept_by_store(plan, file.filename, exc)
            continue
        log.info("%s: deleted %s (%d bytes)", member, file.filename, file.size)
    for partial in plan.stale_partials:
        store.remove(f"{member}/{partial.name}")
        log.info("%s: removed stale %s", member, partial.name)
    remove_orphaned_sidecars(store, member)
    return plan


def _retained(
    store: Retaining, member: str, plan: PrunePlan, present: set[str], now: datetime
) -> dict[str, datetime]:
    """Filename -> the end of the retention of it or its sidecars, for the files to delete."""
    locked = {}
    for file in plan.delete:
        names = [file.filename, *(s for s in sidecar_names(file.filename) if s in present)]
        ends = [until for n in names if (until := store.retained_until(f"{member}/{n}", now))]
        if ends:
            locked[file.filename] = max(ends)
    return locked


def _kept_by_store(plan: PrunePlan, filename: str, exc: RetainedError) -> None:
    """A delete the store refused: the file stays in the plan's keep, with why."""
    moved = [f for f in plan.delete if f.filename == filename]
    plan.delete = [f for f in plan.delete if f.filename != filename]
    plan.keep += moved
    plan.kept_reasons[filename] = lock_reason(exc.until) if exc.until else str(exc)
    log.warning("%s: kept %s: %s", plan.member, filename, plan.kept_reasons[filename])


def remove_orphaned_sidecars(store: Store, member: str) -> list[str]:
    """Sidecars whose backup file is gone (an interrupted prune or a hand-deleted file).

    Only regular files: a directory or symlink named like a sidecar is left alone
    (`read_member_archive` reports it).
    """
    entries = store.listdir(member)
    present = {e.name for e in entries}
    removed = []
    for entry in entries:
        kind, _ = classify(entry.name)
        suffix = SIDECAR_SUFFIXES.get(kind)
        if suffix and is_file(entry) and entry.name.removesuffix(suffix) not in present:
            try:
                store.remove(f"{member}/{entry.name}")
            except RetainedError as exc:  # the next prune after its retention
                log.info("%s: kept the orphaned %s: %s", member, entry.name, exc)
                continue
            removed.append(entry.name)
    return removed
