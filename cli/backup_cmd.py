"""`zfs-offsite backup`: run the backup flow now, the same flow the schedule runs."""

from __future__ import annotations

from typing import Annotated

import typer

from cli import exit_codes, flow_run, output, startup
from cli.progress_bars import stream_progress_bars

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
    from zfs_offsite.jobs.report import row

    flow_run.ensure_server()
    with stream_progress_bars():
        outcome = flow_run.run_flow(
            backup_flow, members=member or [], force_full=force_full, dry_run=dry_run
        )
    result = outcome.result
    outcomes = result.outcomes if isinstance(result, MembersFailed) else result
    if outcome.failed and not isinstance(result, MembersFailed):
        flow_run.fail_run("backup", outcome)
    if not output.verbosity.quiet:
        output.print_rows("zfs-offsite backup", BACKUP_COLUMNS, [row(o) for o in outcomes])
    if outcome.failed:
        output.fail(outcome.message, exit_codes.FAILED)
