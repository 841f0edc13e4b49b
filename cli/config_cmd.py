"""`zfs-offsite config [--check]`: the effective settings and where each one came from.

Read-only and Prefect-free, so it answers at once; exit 2 lists every wrong
setting with its file line or variable, the same lines `load_settings` raises.
`--check` adds what can be proved without connecting (jobs/config_check.py):
key files and their modes, known_hosts, placeholders left from the example.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zfs_offsite.errors import ConfigError
from zfs_offsite.jobs.config_check import check_settings
from zfs_offsite.settings import (
    CONFIG_ENV,
    SettingLine,
    SettingsError,
    config_origin,
    explain_settings,
    load_settings,
    resolve_config_file,
)

EXIT_CONFIG = 2  # the exit code of every configuration error
_SOURCE_COLUMN_MAX = 72  # align sources up to this width; longer values just push theirs out


def _table(lines: list[SettingLine]) -> list[str]:
    """`name = value   (source)`, names and sources in columns."""
    name_width = max(len(s.name) for s in lines)
    left = [f"{s.name:<{name_width}} = {s.value}" for s in lines]
    width = min(max(len(text) for text in left), _SOURCE_COLUMN_MAX)
    return [f"{text:<{width}}   ({s.source})" for text, s in zip(left, lines, strict=True)]


def _check_identity(config: Path | None) -> None:
    """Load `encryption.identity_file` where one is set, so a restore host's check covers it.

    Without this a typo in its path, a key others can read or a missing
    passphrase surfaced only in the middle of a restore.
    """
    settings = load_settings(config)
    if settings.encryption.identity_file is None:
        return
    from zfs_offsite.keys.identities import IdentityError, configured_identities

    try:
        configured_identities(settings.encryption)
    except IdentityError as exc:
        raise ConfigError(str(exc)) from None


def config_command(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help=f"TOML settings file (or ${CONFIG_ENV})."),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Print only the verdict (or the errors); exit 0 or 2.")
    ] = False,
) -> None:
    """Show the effective settings and their sources (secrets redacted); exit 2 if any is wrong."""
    origin = config_origin(config)
    if not check:
        typer.echo(origin)
    try:
        lines = explain_settings(config)
        _check_identity(config)
        errors = check_settings(load_settings(config), resolve_config_file(config)) if check else []
    except ConfigError as exc:
        errors = list(exc.lines) if isinstance(exc, SettingsError) else [str(exc)]
    if errors:
        for line in errors:
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    if check:
        typer.echo(f"config ok: {origin.removeprefix('config: ')}")
        return
    for line in _table(lines):
        typer.echo(line)
