"""`zfs-offsite prune`: delete what the retention policy no longer keeps."""

from __future__ import annotations

from typing import Annotated

import typer

from cli import flow_run, output, startup


def prune(
    config: startup.ConfigOption = None,
    member: startup.MembersOption = None,
    dry_run: Annotated[bool, typer.Option(help="Print the plan; delete nothing.")] = False,
) -> None:
    """Delete backups the retention policy no longer keeps, never a link a kept point needs."""
    settings = startup.load(config)
    flow_run.prepare_prefect()
    from flows.prune import prune_flow
    from zfs_offsite.report.run_report import prune_file_rows

    outcome = flow_run.run_flow(prune_flow, members=member or [], dry_run=dry_run)
    if outcome.failed:
        flow_run.fail_run(
            "prune", outcome, check="`zfs-offsite prune --dry-run` shows what is still to delete"
        )
    if output.verbosity.quiet:
        return
    policy = settings.retention.policy or "no policy: nothing but stale partial uploads"
    output.print_rows(
        f"prune ({policy})" + (" - dry run" if dry_run else ""),
        ("member", "file", "decision", "bytes"),
        [r for plan in outcome.result for r in prune_file_rows(plan, dry_run)],
    )
    freed = sum(p.bytes_freed for p in outcome.result)
    output.out().print(
        f"{'would free' if dry_run else 'freed'} {freed / 1e6:.1f} MB", highlight=False
    )
