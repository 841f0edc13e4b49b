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
MembersOption = Annotated[
    list[str] | None, typer.Option("--member", "-m", help="Only this member (repeatable).")
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="One JSON document on stdout (keys in README).")
]


def print_config_origin() -> None:
    """THE place every command's first line is printed (stderr): which config was loaded.

    `zfs_offsite.settings.config_origin() -> str` comes with the strict-settings
    work; until it is merged this prints nothing.
    """
    from zfs_offsite import settings

    origin = getattr(settings, "config_origin", None)
    if origin is None:
        return
    try:
        line = origin()
    except ZfsOffsiteError as exc:
        line = f"config: {output.one_line(str(exc))}"
    output.info(line)


def load(config: Path | None) -> Settings:
    """Settings for this run, or exit 2 with the one-line error naming the setting."""
    from zfs_offsite.settings import CONFIG_ENV, load_settings

    if config is not None:
        os.environ[CONFIG_ENV] = str(config)  # the flow reads settings on its own
    print_config_origin()
    try:
        return load_settings()
    except ZfsOffsiteError as exc:
        output.fail(str(exc), exit_codes.USAGE)
