"""What `zfs-offsite config` and every command's first line show of the settings.

Each effective value with its origin, secrets as REDACTED, the umask in octal;
and which config file a command reads (or that none was found).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, SecretBytes, SecretStr

from zfs_offsite.errors import ConfigError
from zfs_offsite.settings.files import CONFIG_CANDIDATES, CONFIG_ENV, found_file
from zfs_offsite.settings.loading import load_settings, load_with_origins
from zfs_offsite.settings.origins import DEFAULT, Key, Layer, dotted
from zfs_offsite.settings.sections import DEMO_POOL, DEMO_TARGET

REDACTED = "********"


@dataclass(frozen=True)
class SettingLine:
    """One effective setting for `zfs-offsite config`: dotted name, shown value, origin."""

    name: str
    value: str  # secrets are REDACTED
    source: str  # "/etc/zfs-offsite.toml:12", "env ZFS_OFFSITE_…", ".env:3", "argument", "default"


def _shown(value: object) -> str:
    """A value as `zfs-offsite config` prints it: TOML-like, secrets never."""
    if isinstance(value, SecretStr | SecretBytes):
        return REDACTED
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple | set | frozenset):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return json.dumps(str(getattr(value, "value", value)))


def _lines(model: BaseModel, gathered: Layer, prefix: Key) -> list[SettingLine]:
    lines: list[SettingLine] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        key = (*prefix, name)
        if isinstance(value, BaseModel):
            lines.extend(_lines(value, gathered, key))
        else:
            origin = gathered.origin_of(key) if key in gathered.origins else DEFAULT
            shown = f"0o{value:03o}" if key == ("target", "umask") else _shown(value)
            lines.append(SettingLine(dotted(key), shown, str(origin)))
    return lines


def explain_settings(config_file: Path | None = None) -> list[SettingLine]:
    """Every effective setting with where it came from; SettingsError if any is wrong."""
    settings, gathered = load_with_origins(config_file, {})
    return _lines(settings, gathered, ())


def config_origin(config_file: Path | None = None) -> str:
    """The line every command prints first: which config file it reads, or that none was found.

    Cheap and never raises: a broken file or setting is load_settings' to report.
    """
    try:
        path, why = found_file(config_file)
        if path is not None:
            return f"config: {path.absolute()}{why}"
        looked = ", ".join(f"./{p}" if not p.is_absolute() else str(p) for p in CONFIG_CANDIDATES)
        head = f"config: none found (looked for {looked}, ${CONFIG_ENV} unset)"
        try:
            settings = load_settings()
        except ConfigError:
            return f"{head}: using the environment and the embedded defaults"
        pool, target = settings.source.pool, settings.target.url
        using = "the embedded demo defaults"
        if (pool, target) != (DEMO_POOL, DEMO_TARGET):
            using = "the environment and the embedded defaults"
        return f"{head}: using {using} (pool {pool}, target {target})"
    except Exception as exc:  # a banner line must never stop a command
        return f"config: cannot tell which file ({exc})"
