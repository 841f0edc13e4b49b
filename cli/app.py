"""`zfs-offsite`: run, plan and inspect backups from a shell (typer + rich).

One module per command (`cli/<command>_cmd.py`); this one wires them up and
holds the options every command shares. Read-only commands never import
Prefect: command modules import flows inside the functions that run them.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli import (
    adopt_cmd,
    backup_cmd,
    drill_cmd,
    history_cmd,
    init_cmd,
    keygen_cmd,
    plan_cmd,
    prune_cmd,
    restore_cmd,
    startup,
    status_cmd,
    verify_cmd,
)
from cli.config_cmd import config_command
from cli.errors import one_line_errors
from cli.output import verbosity
from flows.schedules import NIGHTLY_CRON, TIMEZONE

app = typer.Typer(
    help="Ship ZFS snapshots off-site as compressed files.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
)


def _show_version(value: bool) -> None:
    if value:
        from zfs_offsite import __version__  # pyproject.toml's, read on first use

        typer.echo(f"zfs-offsite {__version__}")
        raise typer.Exit()


@app.callback()
def common(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show Prefect's logs and error detail.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Ship ZFS snapshots off-site as compressed files. Exit codes: docs/reference/exit-codes.md."""
    verbosity.level = 1 if verbose else -1 if quiet else 0


app.command()(backup_cmd.backup)
app.command()(plan_cmd.plan)
app.command()(status_cmd.status)
app.command()(restore_cmd.restore)
app.command()(verify_cmd.verify)
app.command()(drill_cmd.drill)
app.command()(prune_cmd.prune)
app.command(name="config")(config_command)
app.command()(history_cmd.history)
app.command()(keygen_cmd.keygen)
app.command()(init_cmd.init)
app.command()(adopt_cmd.adopt)


@app.command()
def serve(
    config: startup.ConfigOption = None,
    cron: Annotated[str, typer.Option(help="Nightly backup schedule (cron).")] = NIGHTLY_CRON,
    timezone: Annotated[str, typer.Option(help="Timezone of the schedules.")] = TIMEZONE,
) -> None:
    """Serve every job (backup, drill, verify, prune, restore) as deployments from this process."""
    from deployments.serve import serve_all

    startup.load(config)
    serve_all(cron, timezone)


def main() -> None:
    """The console script. Signals during a flow: `flow_run.run_flow` (cli/signals.py)."""
    with one_line_errors():
        app()
