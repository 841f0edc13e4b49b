"""A flow run's name and tags: what the runs list shows of a night, a dry run, a retry.

A run is named `<job>-<host>-<YYYY-MM-DD-HHMM>[-dry-run][-members-…]` from its
scheduled start in the schedule's timezone, so the name says which night it is
however late a worker picked it up; the tags let the UI filter dry runs,
partial runs and retries.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from flows.schedules import TIMEZONE
from zfs_offsite.connect import host_label
from zfs_offsite.errors import ZfsOffsiteError
from zfs_offsite.report.history import attempt_tags
from zfs_offsite.report.run_report import slug
from zfs_offsite.settings import load_settings

# Names and times in the history are those of the schedule's timezone (the
# deployments' default), not the worker host's clock.
# The names Prefect gives a run nobody named (`crimson-fox`): the template replaces them.
GENERATED_NAME = re.compile(r"^[a-z]+-[a-z]+$")
DRY_RUN_TAG = "dry-run"
PARTIAL_TAG = "partial"


def run_suffix(parameters: Mapping[str, Any]) -> str:
    """`-dry-run` and `-members-alice-bob`: a run that is not a whole real night says so."""
    suffix = "-dry-run" if parameters.get("dry_run") else ""
    members = parameters.get("members") or []
    if members:
        suffix += "-" + slug("members", *sorted(members))
    return suffix


def run_tags(parameters: Mapping[str, Any]) -> list[str]:
    """Tags of a dry run (`dry-run`) and of a run over some members only (`partial`)."""
    tags = [DRY_RUN_TAG] if parameters.get("dry_run") else []
    return tags + ([PARTIAL_TAG] if parameters.get("members") else [])


def schedule_timezone(deployment_id: object) -> str:
    """The timezone of the deployment's first schedule; TIMEZONE otherwise."""
    if deployment_id is None:
        return TIMEZONE
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment(UUID(str(deployment_id)))
    except Exception:  # a name is no reason to fail the run
        return TIMEZONE
    for schedule in deployment.schedules or []:
        zone = getattr(schedule.schedule, "timezone", None)
        if zone:
            return str(zone)
    return TIMEZONE


def kept_name(run: Any) -> str | None:
    """The run's current name if it must stay: a retried run's, or one a user chose."""
    name = getattr(run, "name", None)
    if not name:
        return None
    if (getattr(run, "run_count", 0) or 0) > 0 or not GENERATED_NAME.match(name):
        return str(name)
    return None


def dated_run_name(job: str) -> Callable[[], str]:
    """A `flow_run_name` callable: `<job>-<host>-<YYYY-MM-DD-HHMM>[-dry-run][-members-…]`.

    The time is the run's scheduled start in the schedule's timezone, so a
    night keeps its time however late a worker picks it up. Prefect calls this
    again on a UI Retry: a run that has run before (or that a user named in the
    Custom run form) keeps its name.
    """

    def name() -> str:
        from prefect.context import FlowRunContext

        context = FlowRunContext.get()
        run = context.flow_run if context else None
        kept = kept_name(run)
        if kept is not None:
            return kept
        try:
            host = host_label(load_settings())
        except ZfsOffsiteError:
            host = "unconfigured"
        when = (run.expected_start_time if run else None) or datetime.now(UTC)
        zone = ZoneInfo(schedule_timezone(run.deployment_id if run else None))
        suffix = run_suffix((context.parameters or {}) if context else {})
        return f"{job}-{host}-{when.astimezone(zone):%Y-%m-%d-%H%M}{suffix}"

    return name


def label_run(parameters: Mapping[str, Any]) -> list[str]:
    """Add `run_tags` to the running flow run's tags (shown and filterable in the UI).

    A run that runs again (a UI Retry: same run, `run_count` 2) also gets
    `retry` and `attempt-<n>`, so the runs list tells it from a night that
    was green at once. Those two mark the flow run only (the returned tags
    go on its task runs too).
    """
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    tags = run_tags(parameters)
    marks = tags + attempt_tags(flow_run.run_count or 1)
    if marks and flow_run.id:
        current = [t for t in flow_run.tags or [] if not t.startswith("attempt-")]
        with get_client(sync_client=True) as client:
            client.update_flow_run(flow_run.id, tags=sorted(set(current) | set(marks)))
    return tags
