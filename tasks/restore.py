"""Prefect task shells over restore: plan the chain, receive it, or download it."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run, task_run

from tasks.retries import retry_policy
from zfs_offsite.archive.index import archived_members
from zfs_offsite.archive.names import members_below
from zfs_offsite.connect import open_runner, open_store, source_endpoint
from zfs_offsite.jobs.restore import (
    RestoreResult,
    download_files,
    plan_restore,
    receive_commands,
    restore_member,
)
from zfs_offsite.jobs.restore_commands import stream_commands
from zfs_offsite.plan.chains import RestorePoint
from zfs_offsite.settings import Settings


@task(name="plan-restore", task_run_name="plan-restore-{member}", cache_policy=NO_CACHE)
def plan(settings: Settings, member: str, snapshot: str | None) -> RestorePoint:
    """Read the member's index and pick the chain; fails before anything is received."""
    with closing(open_store(settings.target)) as store:
        return plan_restore(store, member, snapshot)


@task(name="members-below", task_run_name="members-below-{member}", cache_policy=NO_CACHE)
def below(settings: Settings, member: str) -> list[str]:
    """The archived members of datasets below `member`'s, which its restore does not bring."""
    with closing(open_store(settings.target)) as store:
        return members_below(archived_members(store), member)


@task(
    name="receive-chain",
    task_run_name="receive-{member}",
    cache_policy=NO_CACHE,
    **retry_policy(first_delay=10.0),
)
def receive(
    settings: Settings,
    member: str,
    point: RestorePoint,
    destination: str,
    force: bool = False,
    resume: bool = False,
    destroy_live: bool = False,
) -> RestoreResult:
    """Stream the planned chain into `zfs receive`; a retry resumes after the links received."""
    resume = resume or (task_run.run_count or 1) > 1
    with closing(open_runner(settings)) as runner, closing(open_store(settings.target)) as store:
        return restore_member(
            settings,
            runner,
            store,
            member,
            destination,
            point=point,
            force=force,
            resume=resume,
            destroy_live=destroy_live,
            run=str(flow_run.id) if flow_run.id else None,
        )


@task(name="download-chain", task_run_name="download-{member}", cache_policy=NO_CACHE)
def download(
    settings: Settings, member: str, point: RestorePoint, directory: str, destination: str
) -> list[str]:
    """Copy the planned chain into a local directory; returns the shell lines that restore it."""
    with closing(open_store(settings.target)) as store:
        paths = download_files(store, member, point, Path(directory))
    raw = any(file.raw for file in point.chain)
    return receive_commands(
        paths,
        destination,
        settings.encryption.identity_file,
        raw=raw,
        roll_back_to=point.snapshot if point.inside else None,
        nas=source_endpoint(settings.source, settings.target.timeout),
    )


@task(name="restore-commands", task_run_name="restore-commands-{member}", cache_policy=NO_CACHE)
def standard_tool_lines(
    settings: Settings, member: str, point: RestorePoint, destination: str
) -> list[str]:
    """The shell lines that restore the planned chain straight from the target, by hand."""
    return stream_commands(
        settings.target,
        member,
        point,
        destination,
        settings.encryption.identity_file,
        nas=source_endpoint(settings.source, settings.target.timeout),
    )
