"""Prefect task shells over `zfs_offsite.jobs.backup`: retries, cache keys, run names."""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, replace
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from prefect.runtime import flow_run, task_run

from tasks.progress import ProgressReporter
from tasks.retries import retry_policy
from zfs_offsite.connect import open_runner, open_store
from zfs_offsite.jobs.backup import BackupResult, plan_member, prepare_archive
from zfs_offsite.jobs.backup import execute_plan as execute_plan_fn
from zfs_offsite.jobs.plan_night import plan_each
from zfs_offsite.plan.backup import BackupPlan
from zfs_offsite.settings import Settings
from zfs_offsite.zfs.members import Member


def upload_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Run-scoped key from GUIDs: a UI Retry finds what this run already uploaded."""
    plan: BackupPlan = parameters["plan"]
    settings: Settings = parameters["settings"]
    parts = [
        str(settings.target.parsed),
        plan.dataset,
        plan.upload_base,
        str(plan.snapshot.guid) if plan.snapshot else plan.action.value,
        settings.compression.algorithm.value,
        str(parameters.get("dry_run", False)),
        str(context.task_run.flow_run_id),
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


@task(
    name="plan-member",
    task_run_name="plan-{member.name}",
    cache_policy=NO_CACHE,
    **retry_policy(first_delay=5.0),
)
def plan(settings: Settings, member: Member, force_full: bool = False) -> BackupPlan:
    """Read the member's remote index afresh (never cached) and plan."""
    with closing(open_store(settings.target)) as store:
        return plan_member(settings, store, member, force_full=force_full)[0]


PLAN_CONNECTIONS = 8  # store connections of one batch plan, at most
MEMBERS_PER_CONNECTION = 25  # fewer members than this share one connection


@dataclass(frozen=True)
class Planned:
    """One member's line of a batch plan: its plan, or None if planning it failed."""

    member: Member
    plan: BackupPlan | None


@task(
    name="plan-members",
    task_run_name="plan-members",
    cache_policy=NO_CACHE,
    **retry_policy(first_delay=5.0),
)
def plan_batch(
    settings: Settings, members: list[Member], force_full: bool = False, dry_run: bool = False
) -> list[Planned]:
    """Plan every member in one task run (never cached), over a few store connections.

    A night where most members are up to date is decided here without a task
    run per member. Members are shared out to at most PLAN_CONNECTIONS
    threads, each with its own connection, so a long link's round trips
    overlap as the per-member tasks' did. A member whose planning fails comes
    back without a plan instead of failing the batch; the flow plans it again
    in a `plan` task of its own, so it gets that task's retries and its
    failure shows on its own.

    First, once: is the target's root the archive (`prepare_archive`)? If it is
    missing where the members say an archive was, the batch fails and so every
    member, before anything is written.
    """
    logger = get_run_logger()
    with closing(open_store(settings.target)) as store:
        prepare_archive(settings, store, None, members, write=not dry_run)
    lanes = max(1, min(PLAN_CONNECTIONS, len(members) // MEMBERS_PER_CONNECTION))

    def plan_share(share: list[Member]) -> list[Planned]:
        with closing(open_store(settings.target)) as store:
            # Any failure is one member's problem: the flow plans it again alone.
            plans, failed = plan_each(
                settings, store, share, force_full=force_full, errors=(Exception,)
            )
        for name, error in failed.items():
            logger.info("%s: planned again on its own: %s", name, error)
        by_member = {p.member: p for p in plans}
        return [Planned(m, by_member.get(m.name)) for m in share]

    shares = [members[i::lanes] for i in range(lanes)]
    with ThreadPoolExecutor(max_workers=lanes) as pool:
        results = list(pool.map(plan_share, shares))
    by_name = {line.member.name: line for share in results for line in share}
    return [by_name[m.name] for m in members]


@task(
    name="upload-member",
    task_run_name="upload-{plan.member}",
    **retry_policy(first_delay=10.0),
    cache_key_fn=upload_cache_key,
    persist_result=True,
)
def upload(settings: Settings, plan: BackupPlan, dry_run: bool = False) -> BackupResult:
    """Stream `zfs send` → compress → SFTP for one planned member.

    The host's send limit (if the server has one) is held by the flow for
    all of its uploads (flows/send_limit.send_slots), not acquired per upload.

    A try that fails is noted (how long it ran, its error); the try that
    succeeds returns the notes in `earlier_tries`, so the report shows a cut
    that a retry resumed, not just the last try's figures.
    """
    tries = _earlier_tries.setdefault(str(task_run.id), [])
    started = time.monotonic()
    try:
        result = _upload(settings, plan, dry_run)
    except BaseException as exc:
        said = " ".join(str(exc).split()) or type(exc).__name__
        tries.append(
            f"try {len(tries) + 1} failed after {time.monotonic() - started:.1f} s: {said}"
        )
        raise
    _earlier_tries.pop(str(task_run.id), None)
    return replace(result, earlier_tries=tuple(tries)) if tries else result


# Task run id -> how its failed tries ended. Prefect retries a task in the same process and
# thread under the same task run id; an entry is dropped when a try succeeds (one whose
# last try fails stays: a line per failed member per run, until the process ends).
_earlier_tries: dict[str, list[str]] = {}


def _upload(settings: Settings, plan: BackupPlan, dry_run: bool) -> BackupResult:
    with closing(open_runner(settings)) as runner:
        if not plan.sends or dry_run:
            return execute_plan_fn(settings, runner, None, plan, dry_run=dry_run)
        with (
            closing(open_store(settings.target)) as store,
            ProgressReporter(plan) as progress,
        ):
            run = flow_run.name or flow_run.id
            return execute_plan_fn(settings, runner, store, plan, progress=progress, run=run)
