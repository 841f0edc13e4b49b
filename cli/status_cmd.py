"""`zfs-offsite status`: the archive per member, and a monitoring verdict as the exit code.

Read-only, never imports Prefect. Exit 0 ok, 1 warning, 2 critical (or a
config error, or the backup server cannot be read: a check that cannot look
is not ok). A directory at the target's root that no member backs up any more
is a row of its own, and a warning (exit 1 at least): its restore points are
intact, but an admin must decide what becomes of it.
"""

from __future__ import annotations

from contextlib import closing
from typing import TYPE_CHECKING, Annotated, cast

import typer

from cli import exit_codes, output, startup
from zfs_offsite.errors import ZfsOffsiteError

if TYPE_CHECKING:
    from zfs_offsite.jobs.status import Health, MemberStatus
    from zfs_offsite.settings import Settings
    from zfs_offsite.zfs.members import Excluded

WARNING_HOURS = 26.0  # zfs_offsite.jobs.status has the same defaults; checked by a test
CRITICAL_HOURS = 50.0

STATUS_COLUMNS = (
    "member",
    "status",
    "newest local",
    "newest archived",
    "age (h)",
    "chain",
    "archive MB",
    "partial",
    "ignored",
    "last drill",
    "reasons",
)


def read_statuses(
    settings: Settings,
) -> tuple[list[MemberStatus], dict[str, str], list[Excluded], dict[str, str]]:
    """Every member's status, when each was last drilled (ISO time), the datasets below the
    members that are left out (listed, never silent), and the orphaned directories (no member
    backs them up) with what to do, from one connection."""
    from zfs_offsite.archive.identity import require_root
    from zfs_offsite.archive.index import archived_members
    from zfs_offsite.connect import open_store
    from zfs_offsite.jobs.backup import discover_selection
    from zfs_offsite.jobs.drill import read_records
    from zfs_offsite.jobs.status import orphaned_directories, read_status

    selection = discover_selection(settings)
    members = selection.members
    with closing(open_store(settings.target)) as store:
        require_root(store)  # an unmounted disk is critical, not "never backed up" per member
        statuses = [read_status(store, m) for m in members]
        drills = {name: record.when for name, record in read_records(store).items()}
        directories = archived_members(store)
    orphans = orphaned_directories(directories, members, settings.source.pool)
    return statuses, drills, selection.excluded, orphans


def member_document(
    s: MemberStatus, health: Health, reasons: list[str], drilled: str | None
) -> dict[str, object]:
    """One member in `status --json` (keys documented in docs/how-to/monitoring.md)."""
    age = s.archived_age_hours
    return {
        "member": s.member,
        "status": health.label,
        "reasons": reasons,
        "newest_local": s.newest_local,
        "newest_archived": s.newest_archived,
        "age_hours": round(age, 2) if age is not None else None,
        "chain_length": s.chain_length,
        "backup_files": s.backup_files,
        "archive_bytes": s.archive_bytes,
        "partial_files": s.partial_files,
        "ignored_files": s.ignored_files,
        "corrupt_files": s.corrupt_files,
        "unchained_files": s.unchained_files,
        "unverified_in_chain": s.unverified_in_chain,
        "untrusted_files": s.untrusted_files,
        "findings": s.findings,
        "error": s.error,
        "last_drill": drilled,
    }


MAX_HOURS = 8784  # a leap year: a threshold past it (or inf, nan) would never fire


def _hours(context: typer.Context, param: typer.CallbackParam, value: float) -> float:
    """A threshold in hours; `nan` or `inf` would silence the check, so exit 2 instead."""
    from zfs_offsite.settings import range_problem

    problem = range_problem(value, 0, MAX_HOURS, "a number of hours")
    if problem:
        flag = "--" + (param.name or "hours").replace("_", "-")
        output.fail(f"{flag} {value:g}: {problem}", exit_codes.USAGE)
    return value


def status(
    config: startup.ConfigOption = None,
    warning_hours: Annotated[
        float,
        typer.Option(help="Warn when the newest backup is older than this.", callback=_hours),
    ] = WARNING_HOURS,
    critical_hours: Annotated[
        float,
        typer.Option(help="Critical when the newest backup is older than this.", callback=_hours),
    ] = CRITICAL_HOURS,
    json_output: startup.JsonOption = False,
) -> None:
    """Per member: newest archived snapshot, age, chain, drill; exit 0 ok, 1 warning, 2 critical."""
    from zfs_offsite.jobs.status import Health, Thresholds, judge

    settings = startup.load(config)
    try:
        statuses, drills, excluded, orphans = read_statuses(settings)
    except ZfsOffsiteError as exc:
        output.fail(str(exc), exit_codes.STATUS_CRITICAL)
    thresholds = Thresholds(warning_hours, critical_hours)
    judged = [(s, *judge(s, thresholds)) for s in statuses]
    overall = max((h for _, h, _ in judged), default=Health.CRITICAL)
    if orphans:  # a warning: nothing is lost, but nothing is added either
        overall = max(overall, Health.WARNING)
    documents = [member_document(s, h, r, drills.get(s.member)) for s, h, r in judged]
    if json_output:
        output.print_json(
            {
                "status": overall.label,
                "exit_code": int(overall),
                "pool": settings.source.pool,
                "target": str(settings.target.parsed),
                "warning_hours": warning_hours,
                "critical_hours": critical_hours,
                "members": documents,
                "not_backed_up": [
                    {"dataset": e.dataset, "kind": e.kind, "reason": e.reason} for e in excluded
                ],
                "orphaned_directories": [
                    {"directory": name, "reason": why} for name, why in orphans.items()
                ],
            }
        )
    else:
        rows = (
            [_table_row(d) for d in documents]
            + [{"member": e.dataset, "status": "excluded", "reasons": e.reason} for e in excluded]
            + [
                {"member": f"{name}/", "status": Health.WARNING.label, "reasons": why}
                for name, why in orphans.items()
            ]
        )
        output.print_rows(
            f"status: {settings.source.pool} -> {settings.target.parsed}", STATUS_COLUMNS, rows
        )
        if not statuses:
            output.error(f"no members in pool {settings.source.pool}")
    raise typer.Exit(int(overall))


def _table_row(d: dict[str, object]) -> dict[str, object]:
    age = d["age_hours"]
    drilled = d["last_drill"]
    return {
        "member": d["member"],
        "status": d["status"],
        "newest local": d["newest_local"] or "-",
        "newest archived": d["newest_archived"] or "none",
        "age (h)": f"{age:.1f}" if isinstance(age, float | int) else "-",
        "chain": d["chain_length"],
        "archive MB": f"{cast(int, d['archive_bytes']) / 1e6:.1f}",
        "partial": d["partial_files"],
        "ignored": d["ignored_files"],
        "last drill": str(drilled)[:10] if drilled else "never",
        "reasons": "; ".join(cast(list[str], d["reasons"])),
    }
