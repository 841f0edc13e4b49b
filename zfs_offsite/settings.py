"""All settings in one pydantic-settings class.

Sources, strongest first: arguments, environment (`ZFS_OFFSITE_*`, nested with
`__`), `.env`, a TOML file (`--config`, `$ZFS_OFFSITE_CONFIG`,
`./zfs-offsite.toml`, `/etc/zfs-offsite.toml`), then the embedded defaults,
which describe the demo: a file-backed pool and a local target.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from zfs_offsite.errors import ConfigError
from zfs_offsite.naming import Compression
from zfs_offsite.openssh import available as openssh_available
from zfs_offsite.retention import Rule, parse_policy
from zfs_offsite.ssh import SshEndpoint

ENV_PREFIX = "ZFS_OFFSITE_"
CONFIG_ENV = "ZFS_OFFSITE_CONFIG"
CONFIG_CANDIDATES = (Path("zfs-offsite.toml"), Path("/etc/zfs-offsite.toml"))
DEMO_POOL = "zfs-offsite-demo"
DEMO_TARGET = "file:///var/tmp/zfs-offsite-demo/archive"

_config_file: ContextVar[Path | None] = ContextVar("zfs_offsite_config_file", default=None)


@dataclass(frozen=True)
class TargetUrl:
    """A parsed target: `sftp://user@host:port/path` or `file:///path`."""

    scheme: Literal["sftp", "file"]
    path: str
    host: str = ""
    port: int = 22
    user: str = ""

    def __str__(self) -> str:
        if self.scheme == "file":
            return f"file://{self.path}"
        return f"sftp://{self.user}@{self.host}:{self.port}{self._display_path}"

    @property
    def _display_path(self) -> str:
        return self.path if self.path.startswith("/") else "/~/" + self.path


def parse_target_url(url: str) -> TargetUrl:
    """Parse and check a target URL; `sftp://h/~/dir` means `dir` below the login directory."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc or not parts.path.startswith("/"):
            raise ValueError("a file URL needs an absolute path: file:///srv/backups")
        return TargetUrl("file", unquote(parts.path))
    if parts.scheme == "sftp":
        if not parts.hostname or not parts.username:
            raise ValueError("an sftp URL needs user and host: sftp://user@host:22/path")
        path = unquote(parts.path)
        if path.startswith("/~/") or path == "/~":
            path = path[3:] or "."
        if not path or path == "/":
            raise ValueError("an sftp URL needs a directory: sftp://user@host/~/zfs-backups")
        try:
            port = parts.port or 22
        except ValueError as exc:
            raise ValueError(f"bad port in {url!r}") from exc
        return TargetUrl("sftp", path, parts.hostname, port, unquote(parts.username))
    raise ValueError("the target URL must start with sftp:// or file://")


class SourceSettings(BaseModel):
    """Which datasets are backed up and where their `zfs` runs."""

    pool: str = DEMO_POOL
    dataset_prefix: str = Field(
        "elabfs-", description="Direct children of the pool whose name starts with this."
    )
    datasets: list[str] = Field(
        default_factory=list, description="Explicit datasets (pool/name); overrides the prefix."
    )
    select_property: str | None = Field(
        None, description="A ZFS user property; datasets with value 'on' are backed up."
    )
    ssh_url: str | None = Field(
        None, description="Pull mode: run zfs on this host, ssh://user@host:port."
    )
    key_file: Path | None = None
    known_hosts: Path | None = None
    key_passphrase: SecretStr | None = None

    @field_validator("select_property")
    @classmethod
    def _user_property(cls, value: str | None) -> str | None:
        if value is not None and ":" not in value:
            raise ValueError("must be a ZFS user property with a colon, e.g. zfs-offsite:backup")
        return value

    @field_validator("ssh_url")
    @classmethod
    def _ssh_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme != "ssh" or not parts.hostname or not parts.username:
                raise ValueError("must look like ssh://user@nas:22")
        return value

    def endpoint(self, timeout: float) -> SshEndpoint | None:
        if self.ssh_url is None:
            return None
        parts = urlsplit(self.ssh_url)
        return SshEndpoint(
            host=parts.hostname or "",
            port=parts.port or 22,
            user=unquote(parts.username or ""),
            key_file=self.key_file,
            known_hosts=self.known_hosts,
            passphrase=self.key_passphrase.get_secret_value() if self.key_passphrase else None,
            timeout=timeout,
        )


class TargetSettings(BaseModel):
    """The backup server (or directory) and the SSH credentials for it."""

    url: str = DEMO_TARGET
    key_file: Path | None = None
    known_hosts: Path | None = None
    key_passphrase: SecretStr | None = None
    timeout: float = Field(30.0, gt=0, description="Seconds before a silent connection fails.")
    client: Literal["auto", "openssh", "paramiko"] = Field(
        "auto",
        description="SSH client carrying SFTP: openssh (the `ssh` binary; faster), paramiko "
        "(in-process; needed for a key passphrase), auto picks openssh when it can.",
    )

    @property
    def uses_openssh_client(self) -> bool:
        # Both clients take a key passphrase (OpenSSH through an askpass helper).
        if self.client == "auto":
            return openssh_available()
        return self.client == "openssh"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parse_target_url(value)
        return value

    @property
    def parsed(self) -> TargetUrl:
        return parse_target_url(self.url)

    def endpoint(self) -> SshEndpoint:
        url = self.parsed
        return SshEndpoint(
            host=url.host,
            port=url.port,
            user=url.user,
            key_file=self.key_file,
            known_hosts=self.known_hosts,
            passphrase=self.key_passphrase.get_secret_value() if self.key_passphrase else None,
            timeout=self.timeout,
        )


class CompressionSettings(BaseModel):
    """How streams are compressed; the seed's archive is gzip, new archives zstd."""

    algorithm: Compression = Compression.ZSTD
    level: int | None = Field(None, description="Default: zstd 3, gzip 1 (isal).")
    threads: int = Field(
        1, ge=1, le=64, description="zstd threads; more only pays where zstd is the bottleneck."
    )

    @field_validator("level")
    @classmethod
    def _level(cls, value: int | None) -> int | None:
        if value is not None and not 0 <= value <= 22:
            raise ValueError("must be 0..3 for gzip (isal) or 1..22 for zstd")
        return value

    @property
    def effective_level(self) -> int:
        if self.level is not None:
            if self.algorithm is Compression.GZIP:
                return min(self.level, 3)
            return self.level
        return 3 if self.algorithm is Compression.ZSTD else 1


class RetentionSettings(BaseModel):
    """Which restore points `prune` keeps; unset, prune deletes no backup."""

    policy: str | None = Field(
        None,
        description="Grid over restore points, e.g. 'all 7d, daily 30d, weekly 12w, monthly 12m'.",
    )
    stale_partial_hours: float = Field(
        24.0, ge=1, description="Unfinished uploads (.partial) older than this are removed."
    )

    @field_validator("policy")
    @classmethod
    def _policy(cls, value: str | None) -> str | None:
        if value is not None and value.strip():
            parse_policy(value)
            return value
        return None

    @property
    def rules(self) -> list[Rule] | None:
        return parse_policy(self.policy) if self.policy else None


class FullSettings(BaseModel):
    """When to start a new chain with a full backup, so chains stay short and prunable."""

    after_incrementals: int | None = Field(
        None,
        ge=1,
        description="A new full once this tool has added this many incrementals to the chain.",
    )
    after_days: float | None = Field(
        None,
        gt=0,
        description="A new full once this tool has extended the chain for this many days "
        "(counted from its first file in the chain; a seed-era chain from its adoption).",
    )
    max_per_night: int | None = Field(
        None,
        ge=1,
        description="At most this many fulls the cadence asks for in one run (others wait, "
        "most overdue first); default ceil(members / the shorter of the two limits).",
    )


class DrillSettings(BaseModel):
    """The restore drill: where it receives, and how soon every member gets its turn."""

    scratch_dataset: str | None = Field(
        None,
        description="Parent dataset the drill receives into and destroys again; "
        "default <source.pool>/zfs-offsite-drill.",
    )
    cycle_runs: int = Field(
        4, ge=1, le=366, description="Every member is drilled within this many drill runs."
    )

    @field_validator("scratch_dataset")
    @classmethod
    def _scratch(cls, value: str | None) -> str | None:
        if value is not None and ("@" in value or "/" not in value.strip("/")):
            raise ValueError("must be a dataset below a pool, e.g. tank/zfs-offsite-drill")
        return value


class LockSettings(BaseModel):
    """The writer lock of each member directory: one run writes a member at a time."""

    wait_seconds: float = Field(
        30.0, ge=0, description="How long a run waits for another run's lock before it fails."
    )
    stale_seconds: float = Field(
        600.0,
        ge=120,
        description="A lock untouched this long is dead (its holder touches it every 30 s).",
    )


class Settings(BaseSettings):
    """Everything the tool needs; secrets are SecretStr and never logged."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_file=".env",
        extra="forbid",
    )

    source: SourceSettings = Field(default_factory=SourceSettings)
    target: TargetSettings = Field(default_factory=TargetSettings)
    compression: CompressionSettings = Field(default_factory=CompressionSettings)
    drill: DrillSettings = Field(default_factory=DrillSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    full: FullSettings = Field(default_factory=FullSettings)
    lock: LockSettings = Field(default_factory=LockSettings)
    protect_base: Literal["auto", "bookmark", "hold", "off"] = Field(
        "auto",
        description="Mark the newest uploaded snapshot so the next incremental has a base: "
        "bookmark (OpenZFS), hold (zfs-fuse, old ZFS), auto picks, off.",
    )
    max_parallel: int = Field(2, ge=1, le=16, description="Members streamed at once.")
    retries: int = Field(3, ge=0, le=20, description="Attempts after a transient failure.")
    retry_delay: float = Field(
        10.0, ge=0, description="Seconds before the first retry; doubles each time, jittered."
    )

    @property
    def scratch_dataset(self) -> str:
        return self.drill.scratch_dataset or f"{self.source.pool}/zfs-offsite-drill"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources = [init_settings, env_settings, dotenv_settings]
        path = _config_file.get()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


def resolve_config_file(explicit: Path | None = None) -> Path | None:
    """The TOML file to read: explicit, then $ZFS_OFFSITE_CONFIG, then the usual places."""
    if explicit is not None or os.environ.get(CONFIG_ENV):
        path = explicit or Path(os.environ[CONFIG_ENV])
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist: fix --config or ${CONFIG_ENV}")
        return path
    return next((p for p in CONFIG_CANDIDATES if p.is_file()), None)


def _setting_name(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc)


def load_settings(config_file: Path | None = None, **overrides: object) -> Settings:
    """Load settings, turning any validation error into one line naming the setting."""
    path = resolve_config_file(config_file)
    token = _config_file.set(path)
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = _setting_name(first["loc"])
        env = ENV_PREFIX + name.replace(".", "__").upper()
        where = f" in {path}" if path else ""
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"setting {name} ({env}){where}: {message}") from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from exc
    finally:
        _config_file.reset(token)
