"""The nightly backup flow: discover once, then plan and upload each member in parallel.

Every member is attempted; the run ends Failed, naming the failed members, if
any of them failed, after the report artifacts are written.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, tags
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from prefect.utilities.annotations import quote

from flows.aws_block import read_credentials_block
from flows.failures import earlier_failures, error_of
from flows.fanout import bounded_task_runner, settle, submit_bounded
from flows.interrupts import stops_streams_when_interrupted
from flows.naming import dated_run_name, label_run
from flows.send_limit import optional_limit, send_slots
from tasks.backup import Planned, plan, plan_batch, upload
from tasks.discover import discover
from tasks.retries import retry_policy
from zfs_offsite.connect import host_label
from zfs_offsite.errors import MembersFailed
from zfs_offsite.jobs.backup import plan_result
from zfs_offsite.jobs.plan_night import plan_night
from zfs_offsite.plan.backup import Action, BackupPlan
from zfs_offsite.report.run_report import (
    MemberOutcome,
    artifact_key,
    result_line,
    row,
    send_limit_name,
    summary_markdown,
)
from zfs_offsite.settings import Settings, load_settings
from zfs_offsite.zfs.members import Member, Selection


def report_keys(host: str, members: list[str], dry_run: bool) -> tuple[str, str]:
    """The table and summary artifact keys: `backup-<host>` is a whole real night only.

    A dry run writes under `…-dry-run`, a run over some members under
    `…-partial`, so the host's latest-night artifact is never one of them.
    """
    kind = "-dry-run" if dry_run else "-partial" if members else ""
    return artifact_key("backup", host) + kind, artifact_key("backup-summary", host) + kind


def attempt_notes(attempt: int, failures: list[str]) -> list[str]:
    """E.g. `attempt 2 of this run; attempt 1 failed: backup failed for 1 member(s): bob`."""
    if attempt < 2:
        return []
    said = "; ".join(f"attempt {n} failed: {m}" for n, m in enumerate(failures, 1))
    return [f"attempt {attempt} of this run" + (f"; {said}" if said else "")]


def plan_all(
    settings: Settings,
    members: list[Member],
    force_full: bool,
    retry: dict[str, Any],
    dry_run: bool = False,
) -> tuple[list[BackupPlan], dict[str, PrefectFuture[Any]], list[tuple[str, str]]]:
    """Plans in member order, the task each plan came from, and (member, error) of failures.

    One `plan-members` task plans them all over one connection; only a member
    it could not plan gets a `plan-<member>` task of its own (with its retries).
    If the batch itself fails after its retries (the store is unreachable),
    every member fails with its error.
    """
    if not members:
        return [], {}, []
    # quote(): as for the uploads below (the stubs do not know Prefect unwraps it).
    batch = plan_batch.with_options(**retry).submit(  # type: ignore[call-overload]
        quote(settings), quote(members), force_full, dry_run
    )
    batch.wait()
    if (batch_error := error_of(batch.state)) is not None:
        return [], {}, [(m.name, batch_error) for m in members]
    lines: list[Planned] = batch.result()
    plans: dict[str, PrefectFuture[Any]] = {
        line.member.name: batch for line in lines if line.plan is not None
    }
    again = [line.member for line in lines if line.plan is None]
    plan_task = plan.with_options(**retry)
    singles = [
        plan_task.submit(quote(settings), quote(m), force_full)  # type: ignore[call-overload]
        for m in again
    ]
    retried = {m.name: (p, e) for m, p, e in settle(again, singles)}
    plans.update({m.name: f for m, f in zip(again, singles, strict=True)})
    planned: list[BackupPlan] = []
    failed: list[tuple[str, str]] = []
    for line in lines:
        plan_, error = retried.get(line.member.name, (line.plan, None))
        if error is None:
            planned.append(plan_)
        else:
            failed.append((line.member.name, error))
    return planned, plans, failed


@flow(
    name="zfs-offsite-backup",
    flow_run_name=dated_run_name("backup"),
    task_runner=bounded_task_runner(),
)
@stops_streams_when_interrupted
def backup_flow(
    members: list[str] = [],  # noqa: B006 (Prefect shows the default in the form; never mutated)
    force_full: bool = False,
    dry_run: bool = False,
) -> list[MemberOutcome]:
    """Back up each member's newest snapshot; fail the run if any member failed.

    The parameters are flat, so the UI's Custom run form shows each with the
    description below and `--param dry_run=true` works. No secrets here.

    Args:
        members: Members to back up (names without prefix); empty: all.
        force_full: Send a full stream even where a base exists.
        dry_run: Plan and report, send nothing.
    """
    logger = get_run_logger()
    labels = label_run({"members": members, "dry_run": dry_run})
    settings = load_settings()
    read_credentials_block(settings)
    host = host_label(settings)
    retry = retry_policy(settings.retries, settings.retry_delay)
    plans: dict[str, PrefectFuture[Any]] = {}  # member -> the task its plan came from

    def plan_in_tasks(usable: list[Member]) -> tuple[list[BackupPlan], dict[str, str]]:
        with tags(*labels):
            planned, futures, unplanned = plan_all(settings, usable, force_full, retry, dry_run)
        plans.update(futures)
        return planned, dict(unplanned)

    # The same planning as `zfs-offsite plan` (jobs/plan_night.py), its steps as tasks.
    night = plan_night(
        settings,
        members,
        lambda: Selection(discover(settings)),
        plan_in_tasks,
        where="parameter members:",
    )
    found = night.members
    logger.info("%d member(s) on %s -> %s", len(found), host, settings.target.parsed)
    # A dataset that cannot be a member fails alone, with its one-line error; so does a
    # member that could not be planned.
    outcomes: dict[str, MemberOutcome] = {
        name: MemberOutcome(name, error=error) for name, error in night.failed.items()
    }
    planned = night.plans  # the cadence's fulls staggered over the nights
    upload_task = upload.with_options(**retry)
    limit = None if dry_run else optional_limit(send_limit_name(host), logger)
    with tags(*labels):
        # A first attempt reports plans that send nothing without a task run. A UI
        # Retry submits them too: their cached uploads bring back the figures.
        attempt = flow_run.run_count or 1
        to_upload = [
            p for p in planned if p.sends or (attempt > 1 and p.action is Action.UP_TO_DATE)
        ]
        for p in planned:
            if p not in to_upload:
                # A conflict sends nothing, but the member is not backed up: a failure.
                error = f"member {p.member}: {p.reason}" if p.action is Action.CONFLICT else None
                outcomes[p.member] = MemberOutcome(
                    p.member, result=plan_result(p, dry_run=dry_run), error=error
                )
        # The graph shows no edges between members: Prefect's own tracing of the
        # arguments drew edges to other members' tasks, so the arguments are
        # quoted (not traced) and each upload names its plan's task as its one input.
        streams = 0 if dry_run else min(settings.max_parallel, sum(p.sends for p in to_upload))
        with send_slots(limit, streams, logger) as lanes:
            uploads = submit_bounded(
                to_upload,
                # quote() hides the values from tracing; the task still receives them unwrapped.
                lambda p: upload_task.submit(  # type: ignore[call-overload]
                    quote(settings), quote(p), dry_run, wait_for=[plans[p.member]]
                ),
                lanes if streams else settings.max_parallel,
            )
            settled = settle(to_upload, uploads)
        for (p, result, error), future in zip(settled, uploads, strict=True):
            cached = future.state.name == "Cached"
            outcomes[p.member] = MemberOutcome(p.member, result=result, error=error, cached=cached)

    ordered = [outcomes[m.name] for m in found]
    for outcome in ordered:
        logger.info(result_line(outcome))
    notes = attempt_notes(attempt, earlier_failures())
    what = ", ".join(
        (["dry run"] if dry_run else []) + ([f"members {', '.join(members)}"] if members else [])
    )
    table_key, summary_key = report_keys(host, members, dry_run)
    create_table_artifact(
        key=table_key,
        table=[{**row(o), "attempt": attempt} for o in ordered],
        description=f"zfs-offsite backup of {host} to {settings.target.parsed}"
        + (f" ({what})" if what else "")
        # Every attempt says which it is: a UI Retry writes the same key again.
        + "".join(f"; {n}" for n in notes or [f"attempt {attempt} of this run"]),
    )
    title = host + (f" ({what})" if what else "")
    create_markdown_artifact(key=summary_key, markdown=summary_markdown(title, ordered, notes))
    unsuccessful = [o.member for o in ordered if o.error is not None]
    if unsuccessful:
        # One cause for all (the archive root is missing: the disk is not mounted) is said once.
        causes = {o.error for o in ordered if o.error is not None}
        common = f": {causes.pop()}" if len(causes) == 1 and len(unsuccessful) > 1 else ""
        raise MembersFailed(
            f"backup failed for {len(unsuccessful)} member(s): {', '.join(unsuccessful)}{common}",
            ordered,
        )
    return ordered
