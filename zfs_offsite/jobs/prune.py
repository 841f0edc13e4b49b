"""Prune a member's directory on the backup server by the retention policy.

Deletion order keeps the archive consistent if a prune is interrupted: files
go dependents first (newest first), each backup file before its sidecars, so
what remains is always a set of complete chains plus, at worst, a sidecar
without its file (removed by the next prune). Only regular files are ever
deleted: a directory or symlink in a member's directory is left alone and
reported, as are files whose sidecars cannot establish what they are.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from zfs_offsite.archive.index import is_file
from zfs_offsite.archive.names import SIDECAR_SUFFIXES, classify, sidecar_names
from zfs_offsite.jobs.archive_read import read_archive
from zfs_offsite.plan.retention import PrunePlan, plan_prune
from zfs_offsite.remote.store import Store
from zfs_offsite.values.policy import Rule

log = logging.getLogger(__name__)


def prune_member(
    store: Store,
    member: str,
    rules: Sequence[Rule] | None,
    now: datetime,
    *,
    stale_after: timedelta = timedelta(days=1),
    resumable_after: timedelta = timedelta(days=7),
    dry_run: bool = False,
) -> PrunePlan:
    """Plan (and unless `dry_run`, carry out) the prune of one member directory.

    Without rules no backup file is deleted; stale partial uploads and orphaned
    sidecars are still cleaned up. A partial upload with checkpoints waits
    `resumable_after` for its resume instead of `stale_after`.
    """
    archive = read_archive(store, member, None)
    plan = plan_prune(
        member, archive.files, archive.partials, rules, now, stale_after, resumable_after
    )
    plan.ignored = dict(archive.reasons)
    if dry_run:
        return plan
    for file in plan.delete:
        store.remove(f"{member}/{file.filename}")
        for sidecar in sidecar_names(file.filename):
            entry = archive.entries.get(sidecar)
            if entry is not None and is_file(entry):
                store.remove(f"{member}/{sidecar}")
        log.info("%s: deleted %s (%d bytes)", member, file.filename, file.size)
    for partial in plan.stale_partials:
        store.remove(f"{member}/{partial.name}")
        log.info("%s: removed stale %s", member, partial.name)
    remove_orphaned_sidecars(store, member)
    return plan


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
            store.remove(f"{member}/{entry.name}")
            removed.append(entry.name)
    return removed
