"""`zfs-offsite backup`: run the backup flow now, the same flow the schedule runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from cli import exit_codes, flow_run, output, startup
from cli.progress_bars import stream_progress_bars

if TYPE_CHECKING:
    from zfs_offsite.jobs.ledger import Ledger
    from zfs_offsite.report.run_report import MemberOutcome

BACKUP_COLUMNS = (
    "member",
    "action",
    "base",
    "target",
    "stored_bytes",
    "resumed_mb",
    "ratio",
    "mb_per_s",
    "error",
)


def backup(
    config: startup.ConfigOption = None,
    member: startup.MembersOption = None,
    force_full: Annotated[bool, typer.Option(help="Full stream even where a base exists.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Plan and report only.")] = False,
) -> None:
    """Run the backup flow now (the same flow the schedule runs); exit 1 if any member failed."""
    startup.load(config)
    flow_run.prepare_prefect()
    from flows.backup import backup_flow
    from zfs_offsite.errors import MembersFailed
    from zfs_offsite.jobs import ledger
    from zfs_offsite.report.run_report import row

    flow_run.ensure_server()
    with ledger.keeping() as kept, stream_progress_bars():
        outcome = flow_run.run_flow(
            backup_flow, members=member or [], force_full=force_full, dry_run=dry_run
        )
    if outcome.server_lost:
        report_from_ledger(kept, member or [], outcome, dry_run=dry_run)
    result = outcome.result
    outcomes = result.outcomes if isinstance(result, MembersFailed) else result
    if outcome.failed and not isinstance(result, MembersFailed):
        flow_run.fail_run("backup", outcome)
    if not output.verbosity.quiet:
        output.print_rows("zfs-offsite backup", BACKUP_COLUMNS, [row(o) for o in outcomes])
    if outcome.failed:
        output.fail(outcome.message, exit_codes.FAILED)


def report_from_ledger(
    kept: Ledger, selected: list[str], outcome: flow_run.FlowOutcome, *, dry_run: bool
) -> NoReturn:
    """The Prefect server was lost: what the core stored, member by member, and the exit code.

    Prefect's state of the run is whatever the server last heard; a member's
    file renamed into place is stored whatever became of the server. Exit
    STORED_RECORD_INCOMPLETE when every member is stored or up to date, FAILED
    when any member is not, PREFECT_UNAVAILABLE when the run ended before any
    member was planned (nothing was stored).
    """
    from zfs_offsite.report.run_report import MemberOutcome, row

    outcomes = [
        MemberOutcome(name, result=result, error=error)
        for name, result, error in kept.outcomes()
        if not selected or name in selected
    ]
    if not outcomes:
        output.fail(
            f"backup: {outcome.lost_words} before any member was planned: nothing was stored",
            exit_codes.PREFECT_UNAVAILABLE,
        )
    if not output.verbosity.quiet:
        output.print_rows("zfs-offsite backup", BACKUP_COLUMNS, [row(o) for o in outcomes])
    for o in outcomes:
        output.info(f"{o.member}: {member_words(o)}")
    failed = [o.member for o in outcomes if o.error is not None]
    record = "its run record in Prefect may be incomplete (the run may stay Running there)"
    if failed:
        output.fail(
            f"backup failed for {len(failed)} member(s): {', '.join(failed)} "
            f"(not stored); {outcome.lost_words}; {record}",
            exit_codes.FAILED,
        )
    done = (
        "dry run planned every member, nothing sent"
        if dry_run
        else "backup stored for every member"
    )
    output.info(f"{done}; {outcome.lost_words}; {record}")
    raise typer.Exit(exit_codes.STORED_RECORD_INCOMPLETE)


def member_words(o: MemberOutcome) -> str:
    """`stored erin/…zst (full)`, `up to date`, `failed: …`: from the core's result."""
    r = o.result
    if o.error is not None or r is None:
        return f"failed: {o.error}"
    if r.dry_run:
        return f"{r.action.value} (dry run): nothing sent"
    if r.remote_path and r.stream is not None:
        return f"stored {r.remote_path} ({r.action.value})"
    return f"{r.action.value}: {r.reason}" if r.reason else r.action.value
