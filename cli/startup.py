"""What every command does first: apply `--config`, say where the settings come from, load them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli import exit_codes, output
from zfs_offsite.errors import ZfsOffsiteError

if TYPE_CHECKING:  # settings import paramiko and pydantic: only commands that run load them
    from zfs_offsite.settings import Settings

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML settings file (or $ZFS_OFFSITE_CONFIG).")
]


def member_name(value: str) -> str:
    """A member name given on the command line, or exit 2 with the one rule's line."""
    from zfs_offsite.archive.names import check_member_name

    try:
        return check_member_name(value, "member")
    except ZfsOffsiteError as exc:
        output.fail(str(exc), exit_codes.USAGE)


def _member_names(values: list[str] | None) -> list[str] | None:
    return [member_name(v) for v in values] if values else values


MembersOption = Annotated[
    list[str] | None,
    typer.Option("--member", "-m", help="Only this member (repeatable).", callback=_member_names),
]
JsonOption = Annotated[
    bool,
    typer.Option("--json", help="One JSON document on stdout; keys: docs/reference/commands.md."),
]


def print_config_origin(config: Path | None) -> None:
    """THE place every command's first line is printed (stderr): which config was loaded."""
    from zfs_offsite.settings import config_origin

    output.info(config_origin(config))  # never raises: a broken file is load()'s to report


def load(config: Path | None) -> Settings:
    """Settings for this run, or exit 2 with the one-line error naming the setting."""
    from zfs_offsite.settings import CONFIG_ENV, load_settings

    if config is not None:
        os.environ[CONFIG_ENV] = str(config)  # the flow reads settings on its own
    print_config_origin(config)
    try:
        return load_settings()
    except ZfsOffsiteError as exc:
        for line in getattr(exc, "lines", ())[:-1]:  # SettingsError: one line per wrong setting
            output.error(line)
        output.fail(getattr(exc, "lines", (str(exc),))[-1], exit_codes.USAGE)
