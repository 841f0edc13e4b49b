"""Prefect task shell over the restore drill: one member into scratch, proven by GUID."""

from __future__ import annotations

from contextlib import closing

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from zfs_offsite.connect import open_runner, open_store
from zfs_offsite.jobs.drill import DrillRecord, drill_member
from zfs_offsite.settings import Settings
from zfs_offsite.zfs.members import Member


@task(name="drill-member", task_run_name="drill-{member.name}", cache_policy=NO_CACHE)
def drill(settings: Settings, member: Member) -> DrillRecord:
    """Restore the newest archived snapshot into scratch, check its GUID; the job records it."""
    with closing(open_runner(settings)) as runner, closing(open_store(settings.target)) as store:
        run = str(flow_run.id) if flow_run.id else None
        return drill_member(settings, runner, store, member, run=run)
