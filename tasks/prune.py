"""Prefect task shell over `zfs_offsite.jobs.prune`."""

from __future__ import annotations

from contextlib import closing
from datetime import UTC, datetime, timedelta

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from zfs_offsite.archive.lock import member_lock
from zfs_offsite.connect import open_store
from zfs_offsite.jobs.prune import prune_member
from zfs_offsite.plan.retention import PrunePlan
from zfs_offsite.settings import Settings


@task(name="prune-member", task_run_name="prune-{member}", cache_policy=NO_CACHE)
def prune(settings: Settings, member: str, dry_run: bool = False) -> PrunePlan:
    """Apply the retention policy to one member directory (re-read now, never cached)."""
    stale = timedelta(hours=settings.retention.stale_partial_hours)
    resumable = timedelta(days=settings.retention.resumable_partial_days)
    with closing(open_store(settings.target)) as store:

        def run() -> PrunePlan:
            return prune_member(
                store,
                member,
                settings.retention.rules,
                datetime.now(UTC),
                stale_after=stale,
                resumable_after=resumable,
                dry_run=dry_run,
            )

        if dry_run:
            return run()
        # Prune deletes files and orphaned sidecars: it writes, so it takes the writer lock.
        with member_lock(settings.lock, store, member, "prune", flow_run.name or flow_run.id):
            return run()
