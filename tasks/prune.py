"""Prefect task shell over `zfs_offsite.jobs.prune`."""

from __future__ import annotations

from contextlib import closing

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from zfs_offsite.connect import open_store
from zfs_offsite.jobs.prune import prune_member
from zfs_offsite.plan.retention import PrunePlan
from zfs_offsite.settings import Settings


@task(name="prune-member", task_run_name="prune-{member}", cache_policy=NO_CACHE)
def prune(settings: Settings, member: str, dry_run: bool = False) -> PrunePlan:
    """Apply the retention policy to one member directory (re-read now, never cached).

    The job takes the member's writer lock itself; the run's name says who holds it.
    """
    with closing(open_store(settings.target)) as store:
        run = flow_run.name or flow_run.id
        return prune_member(settings, store, member, dry_run=dry_run, run=run)
