"""The discovery task: which members the source has and their snapshots (backup and drill)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.retries import is_retryable
from zfs_offsite.jobs.backup import backup_members
from zfs_offsite.settings import Settings
from zfs_offsite.zfs.members import Member


@task(
    name="discover-snapshots",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=is_retryable,
)
def discover(settings: Settings) -> list[Member]:
    """List member datasets and their snapshots with one `zfs get` per pool; none is an error."""
    return backup_members(settings)
