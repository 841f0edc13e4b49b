"""`zfs-offsite history`: the backup flow's past nights, from the Prefect server.

The auditor's view: one row per night (members ok/failed, bytes, retries),
one per member (its last good backup: snapshot, file, finished at), or the
detailed rows per night and member. It reads the server's flow runs and the
table artifacts each attempt wrote, from the server PREFECT_API_URL names (or
the host's /etc/default/zfs-offsite: cli/server_config.py). Without one it reads
the local server the flow commands use, whose database under PREFECT_HOME holds
every run started from this machine's CLI, and says that a deployment's nights
are on the deployment's server. The rows themselves are built in
zfs_offsite/report/history.py.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import typer

from cli import exit_codes, output, startup
from zfs_offsite.report.history import Run, detail_rows, document, last_good, nights

BACKUP_FLOW = "zfs-offsite-backup"
SINCE = re.compile(r"^\d+[hdwmy]$")  # an age, in the retention policy's grammar
PAGE = 200  # flow runs and artifacts read per request
DETAIL_COLUMNS = (
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
# The nights view fits 100 columns (tests/cli/test_history_views.py); the members view is
# a block per member, so a long file name is never folded.
NIGHT_COLUMNS = ("scheduled (UTC)", "host", "state", "tries", "ok", "failed", "stored")


class View(StrEnum):
    """What one row of the table is."""

    nights = "nights"
    members = "members"
    detail = "detail"


def parse_since(text: str, now: datetime) -> datetime:
    """`90d`, `12h`, `2w`, or a date `2026-06-01` (UTC); else one line and exit 2."""
    from zfs_offsite.values.policy import parse_age

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


def read_runs(since: datetime, until: datetime | None) -> list[Run]:
    """The backup flow runs due between `since` and `until` (None: also future), newest first.

    A run that was due but never ran (Late) is listed: a missed night is history.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterType,
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
    )
    from prefect.client.schemas.objects import FlowRun
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.settings import PREFECT_API_URL

    base = ui_url(str(PREFECT_API_URL.value()))
    window = FlowRunFilterExpectedStartTime(after_=since, before_=until)
    with get_client(sync_client=True) as client:
        flow_runs: list[FlowRun] = []
        while True:
            page = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[BACKUP_FLOW])),
                flow_run_filter=FlowRunFilter(expected_start_time=window),
                sort=FlowRunSort.EXPECTED_START_TIME_DESC,
                limit=PAGE,
                offset=len(flow_runs),
            )
            flow_runs += page
            if len(page) < PAGE:
                break
        reports: dict[Any, list[Any]] = {run.id: [] for run in flow_runs}
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
    runs = []
    for flow_run in flow_runs:
        state = flow_run.state
        artifacts = sorted(reports[flow_run.id], key=lambda a: a.created)
        runs.append(
            Run(
                name=flow_run.name,
                flow_run_id=str(flow_run.id),
                scheduled=_iso(flow_run.expected_start_time),
                finished=_iso(flow_run.end_time),
                state=(state.name or "") if state else "",
                message=(state.message if state else "") or "",
                attempts=flow_run.run_count,
                tags=list(flow_run.tags or []),
                report_key=(artifacts[-1].key or "") if artifacts else "",
                url=f"{base}/runs/flow-run/{flow_run.id}",
                tables=[_table(a.data) for a in artifacts],
            )
        )
    return runs


def _iso(when: datetime | None) -> str:
    return when.astimezone(UTC).isoformat() if when else ""


def _table(data: Any) -> list[dict[str, Any]]:
    import json

    value = json.loads(data) if isinstance(data, str) else data
    return list(value or [])


def _minute(iso: str) -> str:
    """`2026-12-07 02:30` (UTC) from an ISO time; the text as it is if it is not one."""
    try:
        return f"{datetime.fromisoformat(iso).astimezone(UTC):%Y-%m-%d %H:%M}"
    except ValueError:
        return iso


def _size(value: object) -> str:
    if not isinstance(value, int) or isinstance(value, bool):
        return ""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value} B"


def _night_display(row: dict[str, Any]) -> dict[str, object]:
    state = row["state"] + (" (dry run)" if row["dry_run"] else "")
    failed = ", ".join(row["members_failed"]) or ("-" if row["members_ok"] else row["message"])
    return {
        "scheduled (UTC)": _minute(row["scheduled"]),
        "host": row["host"],
        "state": state,
        "tries": row["attempts"],
        "ok": row["members_ok"],
        "failed": failed,
        "stored": _size(row["stored_bytes"]),
    }


def _last_lines(row: dict[str, Any]) -> list[str]:
    """A member's last good backup as a short block: a file name is never folded or cut."""
    return [
        "",
        f"{row['member']}: {row['action']} finished {_minute(row['finished'])} UTC, "
        f"{_size(row['stored_bytes'])}",
        f"  snapshot  {row['snapshot']}" + (f" (from {row['base']})" if row["base"] else ""),
        f"  file      {row['file']}",
        f"  sha256    {row['sha256']}",
        f"  run       {row['night']}",
    ]


def _detail_display(row: dict[str, Any]) -> dict[str, object]:
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
    view: Annotated[
        View,
        typer.Option(
            help="nights: one row per night; members: each member's last good backup "
            "(snapshot, file, finished); detail: per night and member, with earlier attempts."
        ),
    ] = View.nights,
    last: Annotated[
        bool, typer.Option("--last", help="Each member's last good backup (--view members).")
    ] = False,
    scheduled: Annotated[
        bool, typer.Option("--scheduled", help="Also list runs scheduled for later.")
    ] = False,
    json_output: startup.JsonOption = False,
) -> None:
    """Past backup nights from the Prefect server: per night, each member's last good backup."""
    from cli import flow_run
    from cli.server_config import choose_server, env_file, shown_url

    start = parse_since(since, datetime.now(UTC))  # bad input first: exit 2 wherever it runs
    flow_run.prepare_prefect()
    choice = choose_server()
    # Prints the server line; a health check, one line and exit 3 if down. Without a
    # configured server: the local one, started or reused as the flow commands do.
    flow_run.ensure_server()
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME

    server_url = choice.url or str(PREFECT_API_URL.value())
    if not choice.url:
        output.info(
            f"the runs started from this machine's CLI (the local server's history in "
            f"{PREFECT_HOME.value()}); a deployment's nights are on its server: set "
            f"PREFECT_API_URL (e.g. http://prefect-host:4200/api) here or in {env_file()}"
        )
    now = datetime.now(UTC)
    runs = read_runs(start, None if scheduled else now)
    wanted = set(member or [])
    per_night = nights(runs, wanted)
    good = [r for r in last_good(runs) if not wanted or r["member"] in wanted]
    rows = [
        r
        for run in runs
        for r in detail_rows(run)
        if not wanted or r["member"] in wanted or r["member"] == ""
    ]
    if json_output:
        until = "" if scheduled else now.isoformat()
        output.print_json(
            document(shown_url(server_url), start.isoformat(), until, per_night, good, rows)
        )
        return
    chosen = View.members if last else view
    period = f"since {start:%Y-%m-%d %H:%M} UTC"
    if chosen is View.members:
        missing = sorted(wanted - {r["member"] for r in good})
        output.print_lines(
            [f"last good backup per member, {period}"]
            + [line for r in good for line in _last_lines(r)]
        )
        if missing:  # said, not left out in silence
            output.info(f"no good backup {period} of: {', '.join(missing)}")
    elif chosen is View.nights:
        output.print_rows(
            f"backup nights {period}", NIGHT_COLUMNS, [_night_display(r) for r in per_night]
        )
    else:
        rows.sort(key=lambda r: (r["member"], r["scheduled"]))
        output.print_rows(
            f"zfs-offsite history {period}", DETAIL_COLUMNS, [_detail_display(r) for r in rows]
        )
