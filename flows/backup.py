"""The nightly backup flow: discover once, then plan and upload each member in parallel.

Every member is attempted; the run ends Failed, naming the failed members, if
any of them failed, after the report artifacts are written.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, tags
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run
from prefect.utilities.annotations import quote

from flows.common import (
    bounded_task_runner,
    dated_run_name,
    earlier_failures,
    label_run,
    optional_limit,
    settle,
    stops_streams_when_interrupted,
    submit_bounded,
)
from tasks.backup import plan, upload
from tasks.discover import discover
from tasks.retries import retry_policy
from zfs_offsite.connect import source_host
from zfs_offsite.errors import ConfigError, MembersFailed
from zfs_offsite.jobs.backup import plan_result
from zfs_offsite.jobs.report import (
    MemberOutcome,
    artifact_key,
    result_line,
    row,
    send_limit_name,
    summary_markdown,
)
from zfs_offsite.plan.backup import Action, BackupPlan, apply_full_quota
from zfs_offsite.plan.cadence import full_quota
from zfs_offsite.settings import load_settings


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
    host = source_host(settings)
    found = discover(settings)
    quota = full_quota(settings.full, len(found))  # over all members, not a selection
    if members:
        unknown = sorted(set(members) - {m.name for m in found})
        if unknown:
            raise ConfigError(f"parameter members: no member named {', '.join(unknown)} on {host}")
        found = [m for m in found if m.name in members]
    logger.info("%d member(s) on %s -> %s", len(found), host, settings.target.parsed)

    # A dataset that cannot be a member fails alone, with its one-line error.
    outcomes: dict[str, MemberOutcome] = {
        m.name: MemberOutcome(m.name, error=m.error) for m in found if m.error is not None
    }
    usable = [m for m in found if m.error is None]
    retry = retry_policy(settings.retries, settings.retry_delay)
    plan_task, upload_task = plan.with_options(**retry), upload.with_options(**retry)
    limit = None if dry_run else optional_limit(send_limit_name(host), logger)
    with tags(*labels):
        plans = {m.name: plan_task.submit(settings, m, force_full) for m in usable}
        planned: list[BackupPlan] = []
        for member, planned_member, error in settle(usable, list(plans.values())):
            if error is None:
                planned.append(planned_member)
            else:
                outcomes[member.name] = MemberOutcome(member.name, error=error)
        planned = apply_full_quota(planned, quota)  # stagger the cadence's fulls over the nights

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
        # The graph shows one chain per member: Prefect's own tracing of the
        # arguments drew edges to other members' tasks, so the arguments are
        # quoted (not traced) and each upload names its own plan as its one input.
        uploads = submit_bounded(
            to_upload,
            # quote() hides the values from tracing; the task still receives them unwrapped.
            lambda p: upload_task.submit(  # type: ignore[call-overload]
                quote(settings), quote(p), dry_run, limit, wait_for=[plans[p.member]]
            ),
            settings.max_parallel,
        )
        for (p, result, error), future in zip(settle(to_upload, uploads), uploads, strict=True):
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
        + "".join(f"; {n}" for n in notes),
    )
    title = host + (f" ({what})" if what else "")
    create_markdown_artifact(key=summary_key, markdown=summary_markdown(title, ordered, notes))
    failed = [o.member for o in ordered if o.error is not None]
    if failed:
        raise MembersFailed(
            f"backup failed for {len(failed)} member(s): {', '.join(failed)}", ordered
        )
    return ordered
