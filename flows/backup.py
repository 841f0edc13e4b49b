"""The nightly backup flow: discover once, then plan and upload each member in parallel.

Every member is attempted; the run ends Failed, naming the failed members, if
any of them failed, after the report artifacts are written.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, Field

from flows.common import (
    WORKER_CAP,
    dated_run_name,
    settle,
    stops_streams_when_interrupted,
    submit_bounded,
)
from tasks.backup import discover, plan, retry_policy, upload
from zfs_offsite.backup import plan_result, source_host
from zfs_offsite.cadence import full_quota
from zfs_offsite.errors import ConfigError, ZfsOffsiteError
from zfs_offsite.planner import Action, BackupPlan, apply_full_quota
from zfs_offsite.report import MemberOutcome, artifact_key, row, summary_markdown
from zfs_offsite.settings import load_settings


class BackupParameters(BaseModel):
    """What a run should do; shown as a form in the Prefect UI. No secrets here."""

    members: list[str] = Field(
        default_factory=list, description="Members to back up (names without prefix); empty: all."
    )
    force_full: bool = Field(False, description="Send a full stream even where a base exists.")
    dry_run: bool = Field(False, description="Plan and report, send nothing.")


class BackupFailed(ZfsOffsiteError):
    """Some members failed; the others completed. Carries every member's outcome."""

    def __init__(self, outcomes: list[MemberOutcome]) -> None:
        failed = [o.member for o in outcomes if o.error is not None]
        super().__init__(f"backup failed for {len(failed)} member(s): {', '.join(failed)}")
        self.outcomes = outcomes


@flow(
    name="zfs-offsite-backup",
    flow_run_name=dated_run_name("backup"),
    task_runner=ThreadPoolTaskRunner(max_workers=WORKER_CAP),
)
@stops_streams_when_interrupted
def backup_flow(params: BackupParameters | None = None) -> list[MemberOutcome]:
    """Back up each member's newest snapshot; fail the run if any member failed."""
    params = params or BackupParameters()
    logger = get_run_logger()
    settings = load_settings()
    host = source_host(settings)
    members = discover(settings)
    quota = full_quota(settings.full, len(members))  # over all members, not a selection
    if params.members:
        unknown = sorted(set(params.members) - {m.name for m in members})
        if unknown:
            raise ConfigError(f"parameter members: no member named {', '.join(unknown)} on {host}")
        members = [m for m in members if m.name in params.members]
    logger.info("%d member(s) on %s -> %s", len(members), host, settings.target.parsed)

    # A dataset that cannot be a member fails alone, with its one-line error.
    outcomes: dict[str, MemberOutcome] = {
        m.name: MemberOutcome(m.name, error=m.error) for m in members if m.error is not None
    }
    usable = [m for m in members if m.error is None]
    retry = retry_policy(settings.retries, settings.retry_delay)
    plan_task, upload_task = plan.with_options(**retry), upload.with_options(**retry)
    plans = [plan_task.submit(settings, m, params.force_full) for m in usable]
    planned: list[BackupPlan] = []
    for member, planned_member, error in settle(usable, plans):
        if error is None:
            planned.append(planned_member)
        else:
            outcomes[member.name] = MemberOutcome(member.name, error=error)
    planned = apply_full_quota(planned, quota)  # stagger the cadence's fulls over the nights

    # A first attempt reports plans that send nothing without a task run. A UI
    # Retry submits them too: their cached uploads bring back the figures.
    retried = (flow_run.run_count or 1) > 1
    to_upload = [p for p in planned if p.sends or (retried and p.action is Action.UP_TO_DATE)]
    for p in planned:
        if p not in to_upload:
            # A conflict sends nothing, but the member is not backed up: a failure.
            error = f"member {p.member}: {p.reason}" if p.action is Action.CONFLICT else None
            outcomes[p.member] = MemberOutcome(
                p.member, result=plan_result(p, dry_run=params.dry_run), error=error
            )
    uploads = submit_bounded(
        to_upload,
        lambda p: upload_task.submit(settings, p, params.dry_run),
        settings.max_parallel,
    )
    for p, result, error in settle(to_upload, uploads):
        outcomes[p.member] = MemberOutcome(p.member, result=result, error=error)

    ordered = [outcomes[m.name] for m in members]
    create_table_artifact(
        key=artifact_key("backup", host),
        table=[row(o) for o in ordered],
        description=f"zfs-offsite backup of {host} to {settings.target.parsed}",
    )
    create_markdown_artifact(
        key=artifact_key("backup-summary", host), markdown=summary_markdown(host, ordered)
    )
    if any(o.error is not None for o in ordered):
        raise BackupFailed(ordered)
    return ordered
