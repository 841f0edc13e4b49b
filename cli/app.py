"""`zfs-offsite`: run, plan and inspect backups from a shell (typer + rich)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

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
PLAN_COLUMNS = ("member", "action", "base", "target", "file", "reason")
STATUS_COLUMNS = (
    "member",
    "newest local",
    "newest archived",
    "age (h)",
    "chain",
    "archive MB",
    "partial",
    "ignored",
    "last drill",
)
MembersOption = Annotated[
    list[str] | None, typer.Option("--member", "-m", help="Only this member (repeatable).")
]


def _settings(config: Path | None) -> Settings:
    """Settings for this run, or exit 2 with the one-line error naming the setting."""
    if config is not None:
        import os

        os.environ[CONFIG_ENV] = str(config)  # the flow reads settings on its own
    try:
        return load_settings()
    except ZfsOffsiteError as exc:
        _fail(exc)
        raise  # not reached: _fail exits


def _print_rows(title: str, columns: Sequence[str], rows: Iterable[dict[str, object]]) -> None:
    """A rich table of report rows (the same rows the flows' artifacts hold)."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for r in rows:
        table.add_row(*(str(r.get(c, "")) for c in columns))
    console.print(table)


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


def _fail(exc: ZfsOffsiteError) -> NoReturn:
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

    _settings(config)
    params = BackupParameters(members=member or [], force_full=force_full, dry_run=dry_run)
    with stream_progress_bars():
        result, _ = _run_flow_state(backup_flow, params)
    outcomes = result.outcomes if isinstance(result, BackupFailed) else result
    if isinstance(outcomes, BaseException):
        console.print(f"[red]backup failed:[/red] {outcomes}", highlight=False)
        raise typer.Exit(1)
    _print_rows("zfs-offsite backup", BACKUP_COLUMNS, [row(o) for o in outcomes])
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

    settings = _settings(config)
    try:
        members = [m for m in discover_members(settings) if not member or m.name in member]
        with closing(open_store(settings.target)) as store:
            plans = [plan_member(settings, m, store, force_full=force_full)[0] for m in members]
    except ZfsOffsiteError as exc:
        _fail(exc)
    rows = [
        {
            "member": p.member,
            "action": p.action.value,
            "base": p.base.name if p.base else "",
            "target": p.target.name if p.target else "",
            "file": p.filename or "",
            "reason": p.reason,
        }
        for p in plans
    ]
    _print_rows(f"plan: {settings.source.pool} -> {settings.target.parsed}", PLAN_COLUMNS, rows)


@app.command()
def status(config: ConfigOption = None) -> None:
    """Per member: newest local and archived snapshot, age, chain, archive bytes, last drill."""
    from zfs_offsite.archive import read_member_archive
    from zfs_offsite.backup import discover_members
    from zfs_offsite.drill import read_records
    from zfs_offsite.status import member_status
    from zfs_offsite.store import open_store

    settings = _settings(config)
    try:
        members = discover_members(settings)
        with closing(open_store(settings.target)) as store:
            statuses = [
                member_status(m, read_member_archive(store, m.name, m.dataset_part))
                for m in members
            ]
            drills = read_records(store)
    except ZfsOffsiteError as exc:
        _fail(exc)
    rows = [
        {
            "member": s.member,
            "newest local": s.newest_local or "-",
            "newest archived": s.newest_archived or "[red]none[/red]",
            "age (h)": f"{s.archived_age_hours:.1f}" if s.archived_age_hours is not None else "-",
            "chain": s.chain_length,
            "archive MB": f"{s.archive_bytes / 1e6:.1f}",
            "partial": s.partial_files,
            "ignored": s.ignored_files,
            "last drill": drills[s.member].when[:10] if s.member in drills else "never",
        }
        for s in statuses
    ]
    _print_rows(f"status: {settings.source.pool} -> {settings.target.parsed}", STATUS_COLUMNS, rows)


def _run_flow_state(flow_fn, params):  # type: ignore[no-untyped-def]
    """Run a flow in this process; (result or exception, failed?). A signal ends it: 130/143."""
    from cli.signals import Interrupted, interruptible

    try:
        with interruptible():
            state = flow_fn(params, return_state=True)
    except Interrupted as stop:
        console.print(
            f"[red]interrupted by {stop.reason}:[/red] running streams were stopped, their "
            "partial files removed and member locks released; nothing half-written was kept",
            highlight=False,
        )
        raise typer.Exit(stop.exit_code) from None
    result = state.result(raise_on_failure=False)
    return result, not state.is_completed()


@app.command()
def restore(
    member: Annotated[str, typer.Argument(help="Member (its directory on the backup server).")],
    destination: Annotated[str, typer.Argument(help="Dataset to create, e.g. tank/restore/x.")],
    config: ConfigOption = None,
    snapshot: Annotated[str | None, typer.Option(help="Snapshot; default newest.")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing destination (-F).")] = False,
    resume: Annotated[bool, typer.Option(help="Continue into a partly restored one.")] = False,
    to_dir: Annotated[
        Path | None, typer.Option(help="Download the chain here instead of receiving.")
    ] = None,
) -> None:
    """Restore a member's snapshot (full, then each incremental) into a new dataset."""
    from flows.restore import RestoreParameters, restore_flow

    try:
        _settings(config)
        params = RestoreParameters(
            member=member,
            destination=destination,
            snapshot=snapshot,
            force=force,
            resume=resume,
            to_dir=str(to_dir) if to_dir else None,
        )
    except (ZfsOffsiteError, ValueError) as exc:
        console.print(f"[red]error:[/red] {str(exc).splitlines()[0]}", highlight=False)
        raise typer.Exit(2) from None
    result, failed = _run_flow_state(restore_flow, params)
    if failed:
        console.print(f"[red]restore failed:[/red] {result}", highlight=False)
        raise typer.Exit(1)
    if isinstance(result, list):
        console.print(f"Downloaded to {to_dir}. Restore with standard tools:", highlight=False)
        for line in result:
            console.print(f"  {line}", highlight=False, markup=False)
        return
    console.print(
        f"restored {member}@{result.snapshot} into {result.destination} "
        f"({len(result.files)} file(s), {result.raw_bytes / 1e6:.1f} MB, "
        f"{result.mb_per_second:.1f} MB/s, GUID {result.guid})",
        highlight=False,
    )


@app.command()
def verify(
    config: ConfigOption = None,
    member: MembersOption = None,
    mark: Annotated[bool, typer.Option(help="Mark corrupt files (never deletes).")] = True,
) -> None:
    """Read every stored file back: checksums, decompression, END record, chain continuity."""
    from flows.verify import VerifyParameters, verify_flow
    from zfs_offsite.report import verification_rows

    _settings(config)
    result, failed = _run_flow_state(verify_flow, VerifyParameters(members=member or [], mark=mark))
    verifications = result if isinstance(result, list) else getattr(result, "results", [])
    if verifications:
        rows = [
            r
            for v in verifications
            for r in [
                *verification_rows(v),
                {"member": v.member, "file": "(member)", "verdict": v.verdict.value},
            ]
        ]
        _print_rows(
            "zfs-offsite verify", ("member", "file", "verdict", "stored_bytes", "detail"), rows
        )
    if failed:
        console.print(f"[red]{result}[/red]", highlight=False)
        raise typer.Exit(1)


@app.command()
def drill(config: ConfigOption = None, member: MembersOption = None) -> None:
    """Restore drill: receive the newest archived snapshot into scratch, check GUID, destroy."""
    from flows.verify import DrillParameters, drill_flow

    _settings(config)
    result, failed = _run_flow_state(drill_flow, DrillParameters(members=member or []))
    if failed:
        console.print(f"[red]drill failed:[/red] {result}", highlight=False)
        raise typer.Exit(1)
    for name, when in result.items():
        console.print(f"{name}: restorable, proven {when}", highlight=False)


@app.command()
def prune(
    config: ConfigOption = None,
    member: MembersOption = None,
    dry_run: Annotated[bool, typer.Option(help="Print the plan; delete nothing.")] = False,
) -> None:
    """Delete backups the retention policy no longer keeps, never a link a kept point needs."""
    from flows.prune import PruneParameters, prune_flow
    from zfs_offsite.report import prune_file_rows

    settings = _settings(config)
    params = PruneParameters(members=member or [], dry_run=dry_run)
    result, failed = _run_flow_state(prune_flow, params)
    if failed:
        console.print(f"[red]prune failed:[/red] {result}", highlight=False)
        raise typer.Exit(1)
    policy = settings.retention.policy or "no policy: nothing but stale partial uploads"
    _print_rows(
        f"prune ({policy})" + (" - dry run" if dry_run else ""),
        ("member", "file", "decision", "bytes"),
        [r for plan in result for r in prune_file_rows(plan, dry_run)],
    )
    freed = sum(p.bytes_freed for p in result)
    console.print(f"{'would free' if dry_run else 'freed'} {freed / 1e6:.1f} MB", highlight=False)


@app.command()
def serve(
    config: ConfigOption = None,
    cron: Annotated[str, typer.Option(help="Nightly backup schedule (cron).")] = "30 2 * * *",
    timezone: Annotated[str, typer.Option(help="Timezone of the schedules.")] = "Europe/Berlin",
) -> None:
    """Serve the backup, drill and verify deployments on their schedules from this process."""
    from deployments.serve import serve_all

    _settings(config)
    serve_all(cron, timezone)


def main() -> None:
    try:
        app()
    except ZfsOffsiteError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(2)


from cli.config_cmd import config_command  # noqa: E402 - registered last, see cli/config_cmd.py

app.command(name="config")(config_command)
