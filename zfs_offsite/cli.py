"""`zfs-offsite`: run, plan and inspect backups from a shell (typer + rich)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from zfs_offsite.errors import ZfsOffsiteError
from zfs_offsite.progress import StreamProgress, listening
from zfs_offsite.settings import CONFIG_ENV, Settings, load_settings

app = typer.Typer(help="Ship ZFS snapshots off-site as compressed files.", no_args_is_help=True)
console = Console()
ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help=f"TOML settings file (or ${CONFIG_ENV}).")
]
BACKUP_COLUMNS = (
    "member",
    "action",
    "base",
    "target",
    "stored_bytes",
    "ratio",
    "mb_per_s",
    "error",
)
MembersOption = Annotated[
    list[str] | None, typer.Option("--member", "-m", help="Only this member (repeatable).")
]


def _settings(config: Path | None) -> Settings:
    if config is not None:
        import os

        os.environ[CONFIG_ENV] = str(config)  # the flow reads settings on its own
    return load_settings()


@contextmanager
def stream_progress_bars() -> Iterator[None]:
    """Rich progress bars, one per running stream (a total where `send -nP` gives one)."""
    bars: dict[str, TaskID] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:

        def show(report: StreamProgress) -> None:
            if report.member not in bars:
                bars[report.member] = progress.add_task(
                    f"{report.member}: {report.filename}", total=report.estimate
                )
            progress.update(
                bars[report.member],
                completed=report.raw_bytes,
                total=report.raw_bytes if report.done else report.estimate,
            )

        with listening(show):
            yield


def _fail(exc: ZfsOffsiteError) -> None:
    console.print(f"[red]error:[/red] {exc}", highlight=False)
    raise typer.Exit(2)


@app.command()
def backup(
    config: ConfigOption = None,
    member: MembersOption = None,
    force_full: Annotated[bool, typer.Option(help="Full stream even where a base exists.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Plan and report only.")] = False,
) -> None:
    """Run the backup flow now (the same flow the schedule runs)."""
    from flows.backup import BackupFailed, BackupParameters, backup_flow
    from zfs_offsite.report import row

    try:
        _settings(config)
    except ZfsOffsiteError as exc:
        _fail(exc)
    params = BackupParameters(members=member or [], force_full=force_full, dry_run=dry_run)
    with stream_progress_bars():
        state = backup_flow(params, return_state=True)
    result = state.result(raise_on_failure=False)
    outcomes = result.outcomes if isinstance(result, BackupFailed) else result
    if isinstance(outcomes, BaseException):
        console.print(f"[red]backup failed:[/red] {outcomes}", highlight=False)
        raise typer.Exit(1)
    table = Table(title="zfs-offsite backup")
    for column in BACKUP_COLUMNS:
        table.add_column(column)
    for outcome in outcomes:
        values = row(outcome)
        table.add_row(*(str(values[c]) for c in BACKUP_COLUMNS))
    console.print(table)
    if isinstance(result, BackupFailed):
        console.print(f"[red]{result}[/red]", highlight=False)
        raise typer.Exit(1)


@app.command()
def plan(
    config: ConfigOption = None, member: MembersOption = None, force_full: bool = False
) -> None:
    """Show what a backup would send; nothing is sent or written."""
    from zfs_offsite.backup import discover_members, plan_member
    from zfs_offsite.store import open_store

    try:
        settings = _settings(config)
        members = [m for m in discover_members(settings) if not member or m.name in member]
        table = Table(title=f"plan: {settings.source.pool} -> {settings.target.parsed}")
        for column in ("member", "action", "base", "target", "file", "reason"):
            table.add_column(column)
        with closing(open_store(settings.target)) as store:
            for m in members:
                p, _ = plan_member(settings, m, store, force_full=force_full)
                table.add_row(
                    m.name,
                    p.action.value,
                    p.base.name if p.base else "",
                    p.target.name if p.target else "",
                    p.filename or "",
                    p.reason,
                )
    except ZfsOffsiteError as exc:
        _fail(exc)
    console.print(table)


@app.command()
def status(config: ConfigOption = None) -> None:
    """Per member: newest local and archived snapshot, age, chain length, archive bytes."""
    from zfs_offsite.archive import read_member_archive
    from zfs_offsite.backup import discover_members
    from zfs_offsite.status import member_status
    from zfs_offsite.store import open_store

    try:
        settings = _settings(config)
        members = discover_members(settings)
        with closing(open_store(settings.target)) as store:
            rows = [
                member_status(m, read_member_archive(store, m.name, m.dataset_part))
                for m in members
            ]
    except ZfsOffsiteError as exc:
        _fail(exc)
    table = Table(title=f"status: {settings.source.pool} -> {settings.target.parsed}")
    for column in (
        "member",
        "newest local",
        "newest archived",
        "age (h)",
        "chain",
        "archive MB",
        "partial",
        "ignored",
    ):
        table.add_column(column)
    for s in rows:
        table.add_row(
            s.member,
            s.newest_local or "-",
            s.newest_archived or "[red]none[/red]",
            f"{s.archived_age_hours:.1f}" if s.archived_age_hours is not None else "-",
            str(s.chain_length),
            f"{s.archive_bytes / 1e6:.1f}",
            str(s.partial_files),
            str(s.ignored_files),
        )
    console.print(table)


@app.command()
def serve(
    config: ConfigOption = None,
    cron: Annotated[str, typer.Option(help="Schedule (cron).")] = "30 2 * * *",
    timezone: Annotated[str, typer.Option(help="Timezone of the schedule.")] = "Europe/Berlin",
) -> None:
    """Serve the backup flow on a schedule from this process (one-host setup)."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.schedules import Cron

    from flows.backup import backup_flow

    try:
        _settings(config)
    except ZfsOffsiteError as exc:
        _fail(exc)
    backup_flow.serve(
        name="nightly",
        schedules=[Cron(cron, timezone=timezone)],
        global_limit=ConcurrencyLimitConfig(
            limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
        ),
        tags=["zfs-offsite"],
        description="Nightly off-site backup of each member's newest snapshot.",
    )


def main() -> None:
    try:
        app()
    except ZfsOffsiteError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(2)
