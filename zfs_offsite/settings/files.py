"""Which TOML file the settings come from: `--config`, `$ZFS_OFFSITE_CONFIG`, the usual places.

An explicit file (the option or the variable) must exist and be a regular file,
else a one-line error says what it is instead; without one, the first of
`./zfs-offsite.toml` and `/etc/zfs-offsite.toml` that exists is read, and none
is fine (the environment and the embedded defaults then hold everything).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from zfs_offsite.errors import ConfigError
from zfs_offsite.file_kind import path_kind

CONFIG_ENV = "ZFS_OFFSITE_CONFIG"
CONFIG_CANDIDATES = (Path("zfs-offsite.toml"), Path("/etc/zfs-offsite.toml"))

# Where the absolute candidates are looked up: "/" on a host. The unit tests point it at
# an empty directory, so what this machine's /etc holds cannot change their outcome; the
# names shown to users stay the real ones.
system_root = Path("/")


def config_hint() -> str:
    """The fix named by every error about the chosen config file."""
    return f"fix --config or ${CONFIG_ENV}"


def _on_host(candidate: Path) -> Path:
    return system_root / candidate.relative_to("/") if candidate.is_absolute() else candidate


def first_candidate() -> Path | None:
    """The first usual place that holds a file, by the name users know it by."""
    return next((p for p in CONFIG_CANDIDATES if _on_host(p).is_file()), None)


def readable_path(shown: Path) -> Path:
    """The path to open for a file named `shown` (a candidate under `system_root`)."""
    return _on_host(shown) if shown in CONFIG_CANDIDATES else shown


def resolve_config_file(explicit: Path | None = None) -> Path | None:
    """The TOML file to read: explicit, then $ZFS_OFFSITE_CONFIG, then the usual places."""
    if explicit is not None or os.environ.get(CONFIG_ENV):
        path = explicit or Path(os.environ[CONFIG_ENV])
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist: {config_hint()}") from None
        except OSError as exc:
            raise ConfigError(
                f"config file {path} cannot be read ({exc.strerror}): {config_hint()}"
            ) from None
        if not stat.S_ISREG(mode):
            raise ConfigError(
                f"config file {path} is {path_kind(mode)}, not a TOML file: {config_hint()}"
            )
        return path
    return first_candidate()


def found_file(explicit: Path | None) -> tuple[Path | None, str]:
    """The config file that would be read and why, without checking that it is valid."""
    if explicit is not None:
        return explicit, ""
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]), f" (from ${CONFIG_ENV})"
    return first_candidate(), ""
