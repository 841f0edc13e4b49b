"""Every setting: the models, where their values come from, and what is wrong with them.

Sources, strongest first: arguments, environment (`ZFS_OFFSITE_*`, nested with
`__`), `.env`, a TOML file (`--config`, `$ZFS_OFFSITE_CONFIG`,
`./zfs-offsite.toml`, `/etc/zfs-offsite.toml`), then the embedded defaults,
which describe the demo: a file-backed pool and a local target. A key no model
knows is an error, never ignored: a typo must not send the backup elsewhere.

One module per concern: `urls` and `checks` (value grammars), `sections` (the
nine section models), `model` (the root `Settings`, a pydantic-settings
`BaseSettings`), `origins` and `sources` (raw values, their origins, unknown
keys), `files` (which TOML file), `loading` (`load_settings`), `presentation`
(`zfs-offsite config`). A leaf of the core: it imports only `errors`,
`file_kind` and pure leaves; turning settings into connections is `connect.py`'s.
"""

from __future__ import annotations

from zfs_offsite.settings.checks import range_problem, within
from zfs_offsite.settings.files import CONFIG_CANDIDATES, CONFIG_ENV, resolve_config_file
from zfs_offsite.settings.loading import load_settings
from zfs_offsite.settings.model import ENV_PREFIX, Settings
from zfs_offsite.settings.origins import SettingsError
from zfs_offsite.settings.presentation import (
    REDACTED,
    SettingLine,
    config_origin,
    explain_settings,
)
from zfs_offsite.settings.sections import (
    DEMO_POOL,
    DEMO_TARGET,
    CompressionSettings,
    DrillSettings,
    EncryptionSettings,
    FullSettings,
    LockSettings,
    RetentionSettings,
    S3Settings,
    SettingsSection,
    SourceSettings,
    TargetSettings,
    VerifySettings,
)
from zfs_offsite.settings.urls import TargetUrl, parse_target_url, url_port

__all__ = [
    "CONFIG_CANDIDATES",
    "CONFIG_ENV",
    "DEMO_POOL",
    "DEMO_TARGET",
    "ENV_PREFIX",
    "REDACTED",
    "CompressionSettings",
    "DrillSettings",
    "EncryptionSettings",
    "FullSettings",
    "LockSettings",
    "RetentionSettings",
    "S3Settings",
    "SettingLine",
    "Settings",
    "SettingsError",
    "SettingsSection",
    "SourceSettings",
    "TargetSettings",
    "TargetUrl",
    "VerifySettings",
    "config_origin",
    "explain_settings",
    "load_settings",
    "parse_target_url",
    "range_problem",
    "resolve_config_file",
    "url_port",
    "within",
]
