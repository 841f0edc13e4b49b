"""`zfs-offsite history`: every night of the backup flow, per member, from the Prefect server.

The auditor's view: what was sent, how big, its checksum, and which nights
failed and were retried. It reads the server's flow runs and the table
artifacts each attempt wrote, so it needs `PREFECT_API_URL`: the history lives
in the real server, and a temporary local one would hold none of it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from cli import exit_codes, output, startup

BACKUP_FLOW = "zfs-offsite-backup"
SINCE = re.compile(r"^\d+[hdwmy]$")  # an age, in the retention policy's grammar
PAGE = 200  # flow runs and artifacts read per request
COLUMNS = (
    "night",
    "state",
    "attempts",
    "member",
    "action",
    "base → snapshot",
    "raw_bytes",
    "stored_bytes",
    "seconds",
    "sha256",
    "earlier_attempts",
    "url",
)


def parse_since(text: str, now: datetime) -> datetime:
    """`90d`, `12h`, `2w`, or a date `2026-06-01` (UTC); else one line and exit 2."""
    from zfs_offsite.plan.policy import parse_age

    if SINCE.match(text.strip()):
        try:
            return now - parse_age(text)
        except ValueError as exc:
            output.fail(f"--since {exc}", exit_codes.USAGE)
    try:
        when = datetime.fromisoformat(text.strip())
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: year 1 with an offset east of UTC
        output.fail(
            f"--since {text}: give an age like 90d, 12h, 2w, or a date like 2026-06-01",
            exit_codes.USAGE,
        )


def ui_url(api_url: str) -> str:
    """The UI's base URL: PREFECT_UI_URL, else the API URL without its `/api`."""
    from prefect.settings import PREFECT_UI_URL

    configured = PREFECT_UI_URL.value()
    return str(configured or re.sub(r"/api/?$", "", api_url)).rstrip("/")


def member_rows(night: dict[str, Any], reports: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per member of a night from its attempts' tables (oldest first).

    The last attempt's row holds the figures; the earlier attempts say how the
    member fared before (e.g. `attempt 1: failed: permission denied`), so a
    night retried to green still shows that it failed.
    """
    if not reports:  # the run stopped before writing its report: the night as a whole
        return [
            night
            | {
                "member": "",
                "action": "no report",
                "error": night["message"],
                "earlier_attempts": [],
            }
        ]
    latest = reports[-1]
    rows = []
    for row in latest:
        earlier = []
        for number, report in enumerate(reports[:-1], 1):
            before = next((r for r in report if r.get("member") == row.get("member")), None)
            if before is not None:
                attempt = before.get("attempt", number)
                earlier += _upload_tries(attempt, before)
                said = f"attempt {attempt}: {before.get('action', '')}"
                if before.get("error"):
                    said += f": {before['error']}"
                earlier.append(said)
        earlier += _upload_tries(row.get("attempt", len(reports)), row)
        rows.append(night | row | {"earlier_attempts": earlier})
    return rows


def _upload_tries(attempt: object, row: dict[str, Any]) -> list[str]:
    """The upload's tries that failed within one attempt of the run (the task's retries),
    e.g. `attempt 1: upload try 1 failed after 21.3 s: connection lost`."""
    return [f"attempt {attempt}: upload {said}" for said in row.get("earlier_tries") or []]


def read_history(since: datetime, members: list[str]) -> list[dict[str, Any]]:
    """The rows of every backup flow run that started since `since`, newest night first."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterType,
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterStartTime,
    )
    from prefect.client.schemas.objects import FlowRun
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.settings import PREFECT_API_URL

    base = ui_url(str(PREFECT_API_URL.value()))
    rows: list[dict[str, Any]] = []
    with get_client(sync_client=True) as client:
        runs: list[FlowRun] = []
        while True:
            page = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[BACKUP_FLOW])),
                flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since)),
                sort=FlowRunSort.START_TIME_DESC,
                limit=PAGE,
                offset=len(runs),
            )
            runs += page
            if len(page) < PAGE:
                break
        reports: dict[Any, list[Any]] = {run.id: [] for run in runs}
        ids = list(reports)
        for start in range(0, len(ids), PAGE):
            chunk = ids[start : start + PAGE]
            offset = 0
            while True:
                batch = client.read_artifacts(
                    artifact_filter=ArtifactFilter(
                        flow_run_id=ArtifactFilterFlowRunId(any_=chunk),
                        type=ArtifactFilterType(any_=["table"]),
                    ),
                    limit=PAGE,
                    offset=offset,
                )
                for artifact in batch:
                    if (artifact.key or "").startswith("backup-"):
                        reports[artifact.flow_run_id].append(artifact)
                offset += len(batch)
                if len(batch) < PAGE:
                    break
        for run in runs:
            state = run.state
            night = {
                "night": run.name,
                "flow_run_id": str(run.id),
                "scheduled": run.expected_start_time.isoformat() if run.expected_start_time else "",
                "state": state.name if state else "",
                "message": (state.message if state else "") or "",
                "attempts": run.run_count,
                "tags": sorted(run.tags or []),
                "report_key": "",
                "url": f"{base}/runs/flow-run/{run.id}",
            }
            artifacts = sorted(reports[run.id], key=lambda a: a.created)
            if artifacts:
                night["report_key"] = artifacts[-1].key
            tables = [_table(a.data) for a in artifacts]
            for row in member_rows(night, tables):
                if not members or row["member"] in members or row["member"] == "":
                    rows.append(row)
    return rows


def _table(data: Any) -> list[dict[str, Any]]:
    import json

    value = json.loads(data) if isinstance(data, str) else data
    return list(value or [])


def _display(row: dict[str, Any]) -> dict[str, object]:
    # The report rows keep their column names: "target" is the snapshot sent.
    base, snapshot = row.get("base") or "(none)", row.get("target") or ""
    return row | {
        "base → snapshot": f"{base} → {snapshot}" if snapshot else "",
        "earlier_attempts": "; ".join(row.get("earlier_attempts", [])),
        "action": row.get("action", "") + (f": {row['error']}" if row.get("error") else ""),
    }


def history(
    member: startup.MembersOption = None,
    since: Annotated[
        str, typer.Option(help="How far back: an age (90d, 12h, 2w) or a date (2026-06-01).")
    ] = "90d",
    json_output: startup.JsonOption = False,
) -> None:
    """Every backup night per member from the Prefect server: sent, sizes, sha256, retries."""
    from prefect.settings import PREFECT_API_URL

    start = parse_since(since, datetime.now(UTC))  # bad input first: exit 2 wherever it runs
    api_url = PREFECT_API_URL.value()
    if not api_url:
        output.fail(
            "history reads the Prefect server's flow runs: set PREFECT_API_URL "
            "(e.g. http://prefect-host:4200/api)",
            exit_codes.PREFECT_UNAVAILABLE,
        )
    from cli.flow_run import ensure_server

    ensure_server()  # with PREFECT_API_URL set: a health check, one line and exit 3 if down
    rows = read_history(start, member or [])
    if json_output:
        output.print_json({"api_url": api_url, "since": start.isoformat(), "rows": rows})
        return
    rows.sort(key=lambda r: (r["member"], r["scheduled"]))
    output.print_rows(
        f"zfs-offsite history since {start:%Y-%m-%d %H:%M} UTC",
        COLUMNS,
        [_display(r) for r in rows],
    )
