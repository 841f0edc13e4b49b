"""The backup history an auditor reads: rows built from flow-run records (pure, no I/O).

The CLI reads the backup flow's runs and the table artifacts each attempt
wrote (report/run_report.py's rows); these functions turn them into three views:
one row per night, one per member (its last good backup: snapshot, file,
finished at), and the detailed rows (per night and member, earlier attempts).
The keys of each view are `SCHEMA`, the one list docs/reference/history-json.md
documents (a test checks the two agree).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from zfs_offsite.report.run_report import COLUMNS, FAILED

SENT = ("full", "incremental")  # actions that stored a file (not "… (dry run)")
# A backup run's name: `backup-<host>-<YYYY-MM-DD-HHMM>[-dry-run][-members-…]`.
RUN_NAME = re.compile(r"^backup-(?P<host>.+?)-\d{4}-\d{2}-\d{2}-\d{4}(?:-|$)")
RETRY_TAG = "retry"

NIGHT_KEYS: dict[str, str] = {
    "night": "the flow run's name, e.g. backup-nas1-2026-12-07-0230",
    "host": "the ZFS host the run backed up (from the run's name)",
    "scheduled": "when the run was due (ISO 8601, UTC)",
    "finished": "when its last attempt ended (ISO 8601, UTC; empty while running)",
    "state": "the run's Prefect state now (Completed, Failed, Late, …)",
    "attempts": "how often the run ran (2 or more: retried, e.g. the UI's Retry)",
    "members_ok": "members the last attempt backed up or found up to date",
    "members_failed": "names of the members the last attempt failed",
    "stored_bytes": "bytes stored on the server by the night (all attempts), 0 if none",
    "dry_run": "true for a dry run (nothing was sent)",
    "tags": "the run's tags (dry-run, partial, retry, attempt-N)",
    "message": "the run's state message (why a run with no report stopped)",
    "flow_run_id": "the flow run's id",
    "url": "the flow run's page in the Prefect UI",
}
LAST_GOOD_KEYS: dict[str, str] = {
    "member": "the member (dataset directory name)",
    "snapshot": "the snapshot its newest stored file holds",
    "base": "the snapshot that file is incremental from (empty: a full)",
    "action": "full or incremental",
    "file": "the file on the backup server, relative to the target",
    "stored_bytes": "that file's size on the server",
    "sha256": "that file's checksum",
    "finished": "when its upload finished (ISO 8601)",
    "night": "the flow run that stored it",
    "url": "that flow run's page in the Prefect UI",
}
ROW_EXTRA_KEYS: dict[str, str] = {
    "attempt": "the attempt of the run that wrote the row",
    "earlier_attempts": "how the member fared in the run's earlier attempts and upload tries",
    "report_key": "the key of the table artifact the row comes from",
}
ROW_KEYS: dict[str, str] = (
    {k: NIGHT_KEYS[k] for k in ("night", "flow_run_id", "scheduled", "state", "message")}
    | {k: NIGHT_KEYS[k] for k in ("attempts", "tags", "url")}
    | ROW_EXTRA_KEYS
    | {
        c: "the member's column of the run's report table (docs: History and audit)"
        for c in COLUMNS
    }
)
SCHEMA: dict[str, dict[str, str]] = {
    "nights": NIGHT_KEYS,
    "last_good": LAST_GOOD_KEYS,
    "rows": ROW_KEYS,
}
DOCUMENT_KEYS: dict[str, str] = {
    "server": "the Prefect API the command read",
    "since": "the start of the period (ISO 8601)",
    "until": "the end of the period: now, or empty with --scheduled",
} | {view: f"a list of objects with the keys of `{view}`" for view in SCHEMA}


@dataclass
class Run:
    """One backup flow run as the server holds it, with its attempts' report tables."""

    name: str
    flow_run_id: str
    scheduled: str
    state: str
    attempts: int
    url: str
    finished: str = ""
    message: str = ""
    tags: list[str] = field(default_factory=list)
    report_key: str = ""
    tables: list[list[dict[str, Any]]] = field(default_factory=list)  # oldest attempt first

    @property
    def host(self) -> str:
        match = RUN_NAME.match(self.name)
        return match["host"] if match else ""


def attempt_tags(run_count: int) -> list[str]:
    """`retry` and `attempt-N` for a run that runs again (a UI Retry): shown in the runs list."""
    return [RETRY_TAG, f"attempt-{run_count}"] if run_count > 1 else []


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
                "error": night.get("message", ""),
                "earlier_attempts": [],
            }
        ]
    rows = []
    for row in reports[-1]:
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


def detail_rows(run: Run) -> list[dict[str, Any]]:
    """The run's rows per member (`ROW_KEYS`)."""
    night = {
        "night": run.name,
        "flow_run_id": run.flow_run_id,
        "scheduled": run.scheduled,
        "state": run.state,
        "message": run.message,
        "attempts": run.attempts,
        "tags": sorted(run.tags),
        "report_key": run.report_key,
        "url": run.url,
    }
    return member_rows(night, run.tables)


def _bytes(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def night_row(run: Run, members: Collection[str] = ()) -> dict[str, Any]:
    """The run as one row (`NIGHT_KEYS`): how many members ended well, which failed, bytes.

    `members`: count only these (`history --member`); empty: all of the run's.
    """
    latest = run.tables[-1] if run.tables else []
    latest = [r for r in latest if not members or r.get("member") in members]
    failed = [str(r.get("member", "")) for r in latest if _failed(r)]
    return {
        "night": run.name,
        "host": run.host,
        "scheduled": run.scheduled,
        "finished": run.finished,
        "state": run.state,
        "attempts": run.attempts,
        "members_ok": len(latest) - len(failed),
        "members_failed": failed,
        "stored_bytes": sum(_bytes(r.get("stored_bytes")) for r in latest),
        "dry_run": "dry-run" in run.tags,
        "tags": sorted(run.tags),
        "message": run.message,
        "flow_run_id": run.flow_run_id,
        "url": run.url,
    }


def nights(runs: Iterable[Run], members: Collection[str] = ()) -> list[dict[str, Any]]:
    """A row per run; with `members`, only the runs that reported one of them (or nothing:
    a run that stopped before its report may have been about to back them up)."""
    rows = []
    for run in runs:
        row = night_row(run, members)
        if not members or not run.tables or row["members_ok"] or row["members_failed"]:
            rows.append(row)
    return rows


def _failed(row: dict[str, Any]) -> bool:
    return bool(row.get("error")) or row.get("action") == FAILED


def last_good(runs: Iterable[Run]) -> list[dict[str, Any]]:
    """Per member, the newest file a run stored (`LAST_GOOD_KEYS`), sorted by member.

    Only rows that stored a file count (full or incremental, no error, a file
    named): a dry run, a failure or "up to date" never replaces it. Newest is
    by the upload's finish time, so a retried night's cached row (the file its
    first attempt stored) is as good as the first attempt's own.
    """
    best: dict[str, dict[str, Any]] = {}
    for run in runs:
        for table in run.tables:
            for r in table:
                if r.get("action") not in SENT or _failed(r) or not r.get("remote_path"):
                    continue
                member = str(r.get("member", ""))
                finished = str(r.get("finished", ""))
                if member in best and best[member]["finished"] >= finished:
                    continue
                best[member] = {
                    "member": member,
                    "snapshot": r.get("target", ""),
                    "base": r.get("base", ""),
                    "action": r.get("action", ""),
                    "file": r.get("remote_path", ""),
                    "stored_bytes": r.get("stored_bytes", ""),
                    "sha256": r.get("sha256", ""),
                    "finished": finished,
                    "night": run.name,
                    "url": run.url,
                }
    return [best[m] for m in sorted(best)]


def document(
    server: str,
    since: str,
    until: str,
    nights: list[dict[str, Any]],
    good: list[dict[str, Any]],
    rows: list[dict[str, Any]],
) -> dict[str, Any]:
    """`history --json`: the keys of `DOCUMENT_KEYS`, each view a list of its rows."""
    return {
        "server": server,
        "since": since,
        "until": until,
        "nights": nights,
        "last_good": good,
        "rows": rows,
    }
