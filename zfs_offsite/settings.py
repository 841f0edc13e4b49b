"""All settings: the models, where their values come from, and what is wrong with them.

Sources, strongest first: arguments, environment (`ZFS_OFFSITE_*`, nested with
`__`), `.env`, a TOML file (`--config`, `$ZFS_OFFSITE_CONFIG`,
`./zfs-offsite.toml`, `/etc/zfs-offsite.toml`), then the embedded defaults,
which describe the demo: a file-backed pool and a local target. A key no model
knows is an error, never ignored: a typo must not send the backup elsewhere.

A leaf: it imports only `errors` and pure leaves (names, the policy and bandwidth grammars);
turning these models into connections is `connect.py`'s job.
"""

from __future__ import annotations

import json
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretBytes,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from zfs_offsite import setting_sources as sources
from zfs_offsite.archive.names import Compression
from zfs_offsite.archive.recipients import Recipient, parse_recipient, parse_recipients_text
from zfs_offsite.errors import ConfigError
from zfs_offsite.file_kind import path_kind
from zfs_offsite.plan.bandwidth import Bandwidth, parse_bandwidth
from zfs_offsite.plan.policy import Rule, parse_policy
from zfs_offsite.zfs.model import check_dataset_name

ENV_PREFIX = "ZFS_OFFSITE_"
CONFIG_ENV = "ZFS_OFFSITE_CONFIG"
ENV_EXEMPT = frozenset({CONFIG_ENV})  # prefixed variables that are not settings
CONFIG_CANDIDATES = (Path("zfs-offsite.toml"), Path("/etc/zfs-offsite.toml"))
DOTENV = Path(".env")
DEMO_POOL = "zfs-offsite-demo"
DEMO_TARGET = "file:///var/tmp/zfs-offsite-demo/archive"
REDACTED = "********"


def within(low: float, high: float, unit: str, *, above: bool = False) -> AfterValidator:
    """A numeric setting's finite range, refused in one line that states it.

    Every number a setting holds goes through here: `inf`, `nan` (TOML and float
    parsing both accept them) and values past any sane use fail at load, naming
    the range, instead of hanging a night or overflowing a date later.
    """

    def check(value: float) -> float:
        problem = range_problem(value, low, high, unit, above=above)
        if problem:
            raise ValueError(problem)
        return value

    return AfterValidator(check)


def range_problem(
    value: float, low: float, high: float, unit: str, *, above: bool = False
) -> str | None:
    """`must be <unit> from <low> to <high>` if `value` is outside (or inf, nan); else None."""
    fits = math.isfinite(value) and (value > low if above else value >= low)
    if fits and value <= high:
        return None
    span = f"more than {low:g} and at most" if above else f"from {low:g} to"
    return f"must be {unit} {span} {high:g}"


class SettingsSection(BaseModel):
    """Base of every settings model: an unknown key is an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid")


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
        _no_query(url, "file:///srv/backups")
        return TargetUrl("file", unquote(parts.path))
    if parts.scheme == "sftp":
        port = url_port(url, "sftp://user@host:22/~/zfs-backups")
        if not parts.hostname or not parts.username:
            raise ValueError("an sftp URL needs user and host: sftp://user@host:22/path")
        path = unquote(parts.path)
        if path.startswith("/~/") or path == "/~":
            path = path[3:] or "."
        if not path or path == "/":
            raise ValueError("an sftp URL needs a directory: sftp://user@host/~/zfs-backups")
        return TargetUrl("sftp", path, parts.hostname, port, unquote(parts.username))
    raise ValueError("the target URL must start with sftp:// or file://")


def url_port(url: str, example: str) -> int:
    """The port of an SSH URL (22 if none), after refusing what the URL must not carry.

    A password would be shown by `zfs-offsite config`, stored in flow parameters
    and logs: it is refused, and the refusal never repeats it. A query or fragment
    would be dropped, and port 0 read as 22: both are refused, not guessed at.
    """
    parts = urlsplit(url)
    if parts.password is not None:
        raise ValueError(
            "the URL holds a password, which this tool refuses (it would be shown and "
            f"logged): remove it from the URL ({example}) and log in with key_file or an "
            "SSH agent"
        )
    _no_query(url, example)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is None and parts.netloc.endswith(":"):
        port = -1  # `host:` names no port: a typo, not a request for 22
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"the port must be a number from 1 to 65535 (or none for 22): {example}")
    return port or 22


def _no_query(url: str, example: str) -> None:
    if "?" in url or "#" in url:
        raise ValueError(
            "the URL has a '?' or '#' part, which names nothing here and would be dropped: "
            f"remove it (write %3F or %23 for one in a directory name), e.g. {example}"
        )


class SourceSettings(SettingsSection):
    """Which datasets are backed up and where their `zfs` runs."""

    pool: str = Field(DEMO_POOL, description="The pool holding the members.")
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
    key_file: Path | None = Field(
        None, description="Pull mode: private SSH key for the NAS (mode 600), as target.key_file."
    )
    known_hosts: Path | None = Field(
        None, description="Pull mode: known_hosts holding the NAS's host key (unset: ~/.ssh's)."
    )
    key_passphrase: SecretStr | None = Field(
        None,
        description="Pull mode: the key's passphrase; secret: set it in the environment "
        "(ZFS_OFFSITE_SOURCE__KEY_PASSPHRASE).",
    )
    raw_send: Literal["auto", "never"] = Field(
        "auto",
        description="auto: send natively encrypted datasets raw (zfs send -w), still "
        "encrypted with their own key; never: plain sends (the key must be loaded).",
    )
    compressed_send: Literal["auto", "always", "never"] = Field(
        "auto",
        description="`zfs send -c` (where the NAS's zfs has it; asked, not assumed) sends "
        "blocks compressed on disk as they are, so the NAS does not decompress them. auto: "
        "for datasets compressed with zstd or gzip, whose blocks our compressor would shrink "
        "little more; always: for every dataset (lz4 blocks of text can cost ~20 % more "
        "stored bytes); never: plain sends. Raw sends are compressed anyway.",
    )

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
            if parts.scheme != "ssh":
                raise ValueError("must look like ssh://user@nas:22")
            url_port(value, "ssh://user@nas:22")
            if not parts.hostname or not parts.username or parts.path not in ("", "/"):
                raise ValueError("must look like ssh://user@nas:22")
        return value


UMASK_HINT = "an octal umask such as 0o077 (private, the default) or 0o027 (group may read)"


def parse_umask(value: object) -> int:
    """A umask from TOML (`0o027`, an int) or the environment (`"027"`, `"0o027"`: octal).

    The owner's bits must stay: the tool has to read back what it wrote."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not {UMASK_HINT}")
    if isinstance(value, str):
        text = value.strip().lower().removeprefix("0o")
        if not text or any(c not in "01234567" for c in text):
            raise ValueError(f"{value!r} is not {UMASK_HINT}")
        value = int(text, 8)
    if not isinstance(value, int) or not 0 <= value <= 0o777:
        raise ValueError(f"{value!r} is not {UMASK_HINT}")
    if value & 0o700:
        raise ValueError(
            f"{oct(value)} takes the owner's own access: zfs-offsite could not read its archive; "
            f"use {UMASK_HINT}"
        )
    return value


class TargetSettings(SettingsSection):
    """The backup server (or directory) and the SSH credentials for it."""

    url: str = Field(
        DEMO_TARGET,
        description="sftp://user@host:port/abs/path, sftp://user@host/~/rel/path or "
        "file:///path; a password in the URL is refused (log in with key_file or an agent).",
    )
    key_file: Path | None = Field(
        None, description="Private key for the backup server (OpenSSH or PEM), mode 600."
    )
    known_hosts: Path | None = Field(
        None,
        description="The server's host key must be here (unset: ~/.ssh/known_hosts); "
        "unknown or changed keys are refused.",
    )
    key_passphrase: SecretStr | None = Field(
        None,
        description="The key's passphrase, if it has one; secret: set it in the environment "
        "(ZFS_OFFSITE_TARGET__KEY_PASSPHRASE), never in parameters.",
    )
    timeout: Annotated[float, within(1, 3600, "a number of seconds")] = Field(
        30.0, description="Seconds before a silent connection fails (1 to 3600)."
    )
    client: Literal["auto", "openssh", "paramiko"] = Field(
        "auto",
        description="SSH client carrying SFTP: openssh (the `ssh` binary; faster) or paramiko "
        "(in-process); auto picks openssh when ssh is installed.",
    )
    bandwidth: str | None = Field(
        None,
        description="Upload limit shared by all streams of the process, e.g. '40MB/s' "
        "(MB = 10^6 bytes, MiB = 2^20), or by local time: '08:00-20:00 10MB/s, 40MB/s'; "
        "unset, 0 or unlimited: no limit.",
    )

    umask: int = Field(
        0o077,
        description="Permission bits taken away from the archive's new files and directories: "
        "0o077 (default) keeps them private to the login (files 0600, dirs 0700); 0o027 lets "
        "its group read. Existing files are never changed.",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parsed = parse_target_url(value)
        if parsed.scheme == "file":
            _must_be_a_directory(Path(parsed.path))
        return value

    @field_validator("umask", mode="before")
    @classmethod
    def _umask(cls, value: object) -> int:
        return parse_umask(value)

    @field_validator("bandwidth")
    @classmethod
    def _bandwidth(cls, value: str | None) -> str | None:
        if value is not None:
            parse_bandwidth(value)
        return value

    @property
    def parsed(self) -> TargetUrl:
        return parse_target_url(self.url)

    @property
    def bandwidth_limit(self) -> Bandwidth:
        """The parsed limit; `unlimited` when unset."""
        return parse_bandwidth(self.bandwidth or "")


class CompressionSettings(SettingsSection):
    """How streams are compressed; the seed's archive is gzip, new archives zstd."""

    algorithm: Compression = Field(
        Compression.ZSTD, description="zstd (files .zst) or gzip (.gz, written by ISA-L)."
    )
    level: int | None = Field(None, description="Default: zstd 3, gzip 1 (isal).")
    threads: Annotated[int, within(1, 64, "a number of threads")] = Field(
        2,
        description="zstd worker threads, beside the one reading and hashing the send stream; "
        "2 matches `zstd -T2` at the same CPU per GB.",
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


class EncryptionSettings(SettingsSection):
    """age encryption of the stored files: public keys here, the secret only where restores run.

    With any recipient set, every new file is encrypted to all of them (`.zst.age`).
    The identity is the secret that decrypts: restore and the drill need it, backup
    and verify do not, so keep it off the host that writes backups.
    """

    recipients: list[str] = Field(
        default_factory=list,
        description="Public keys to encrypt to: age1… (zfs-offsite keygen, age-keygen) or "
        "'ssh-ed25519 AAAA…'/'ssh-rsa AAAA…'; every one of them can decrypt.",
    )
    recipients_file: Path | None = Field(
        None, description="A file of public keys, one a line, # comments (age -R format)."
    )
    identity_file: Path | None = Field(
        None,
        description="The secret key file restore and drill decrypt with (zfs-offsite keygen "
        "output, or an SSH private key); never needed by backup or verify.",
    )
    age_raw_sends: bool = Field(
        False,
        description="Also age-encrypt raw sends of natively encrypted datasets (both layers); "
        "by default a raw send is stored as sent, encrypted with the dataset's own key.",
    )
    identity_passphrase: SecretStr | None = Field(
        None,
        description="Passphrase of an SSH identity_file that has one; secret: set it in the "
        "environment (ZFS_OFFSITE_ENCRYPTION__IDENTITY_PASSPHRASE).",
    )

    @field_validator("recipients")
    @classmethod
    def _recipients(cls, value: list[str]) -> list[str]:
        for index, text in enumerate(value):
            try:
                parse_recipient(text)
            except ValueError as exc:
                raise ValueError(f"recipient {index + 1}: {exc}") from None
        return value

    @field_validator("recipients_file")
    @classmethod
    def _recipients_file(cls, value: Path | None) -> Path | None:
        if value is not None:
            keys = _read_recipients_file(value)
            if not keys:
                raise ValueError(f"{value} names no recipient: add a public key (age1…) a line")
        return value

    @property
    def enabled(self) -> bool:
        """True when new files are encrypted."""
        return bool(self.recipients or self.recipients_file)

    def recipient_keys(self) -> list[Recipient]:
        """Every configured recipient, the file's read afresh (duplicates dropped)."""
        keys = [parse_recipient(text) for text in self.recipients]
        if self.recipients_file is not None:
            try:
                keys += _read_recipients_file(self.recipients_file)
            except ValueError as exc:
                raise ConfigError(f"setting encryption.recipients_file: {exc}") from None
        return list({key.key: key for key in keys}.values())


def _must_be_a_directory(path: Path) -> None:
    """A file:// archive that exists must be a directory: `/dev/null` crashed every command."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # missing: a first backup creates it, or the archive identity says it is gone
    if not stat.S_ISDIR(mode):
        raise ValueError(
            f"{path} is {path_kind(mode)}, not a directory: point it at the archive's directory"
        )


def _read_recipients_file(path: Path) -> list[Recipient]:
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):  # a pipe would block the read, /dev/null reads as empty
            raise ValueError(
                f"{path} is {path_kind(mode)}, not a file: name the file of public keys"
            )
        text = path.read_text()
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist: name the file of public keys") from None
    except OSError as exc:
        raise ValueError(
            f"{path} cannot be read ({exc.strerror}): name a readable text file"
        ) from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not text (not UTF-8): name the file of public keys") from None
    try:
        return parse_recipients_text(text)
    except ValueError as exc:
        raise ValueError(f"{path} {exc}") from None


class RetentionSettings(SettingsSection):
    """Which restore points `prune` keeps; unset, prune deletes no backup."""

    policy: str | None = Field(
        None,
        description="Grid over restore points, e.g. 'all 7d, daily 30d, weekly 12w, monthly 12m'.",
    )
    stale_partial_hours: Annotated[float, within(1, 8784, "a number of hours")] = Field(
        24.0, description="Unfinished uploads (.partial) older than this are removed."
    )
    resumable_partial_days: Annotated[float, within(1, 366, "a number of days")] = Field(
        7.0,
        description="A partial upload with checkpoints (resumable) and its checkpoint file "
        "are removed only this long after their last write.",
    )

    @field_validator("policy")
    @classmethod
    def _policy(cls, value: str | None) -> str | None:
        if value is not None and value.strip():
            parse_policy(value)
            return value
        return None

    @field_validator("resumable_partial_days")
    @classmethod
    def _resumable(cls, value: float, info: ValidationInfo) -> float:
        stale = info.data.get("stale_partial_hours")
        if stale is not None and value * 24 < stale:
            raise ValueError(
                f"{value:g} days is shorter than retention.stale_partial_hours ({stale:g} h): "
                "a resumable upload must be kept at least as long as a dead one"
            )
        return value

    @property
    def rules(self) -> list[Rule] | None:
        return parse_policy(self.policy) if self.policy else None


FullIncrementals = Annotated[int, within(1, 100_000, "a number of incrementals")]
FullDays = Annotated[float, within(0, 3660, "a number of days", above=True)]
FullsPerNight = Annotated[int, within(1, 10_000, "a number of fulls")]


class FullSettings(SettingsSection):
    """When to start a new chain with a full backup, so chains stay short and prunable."""

    after_incrementals: FullIncrementals | None = Field(
        None,
        description="A new full once this tool has added this many incrementals to the chain.",
    )
    after_days: FullDays | None = Field(
        None,
        description="A new full once this tool has extended the chain for this many days "
        "(counted from its first file in the chain; a seed-era chain from its adoption).",
    )
    max_per_night: FullsPerNight | None = Field(
        None,
        description="At most this many fulls the cadence asks for in one run (others wait, "
        "most overdue first); default ceil(members / the shorter of the two limits).",
    )


class DrillSettings(SettingsSection):
    """The restore drill: where it receives, and how soon every member gets its turn."""

    scratch_dataset: str | None = Field(
        None,
        description="Parent dataset the drill receives into and destroys again; "
        "default <source.pool>/zfs-offsite-drill.",
    )
    cycle_runs: Annotated[int, within(1, 366, "a number of drill runs")] = Field(
        4, description="Every member is drilled within this many drill runs."
    )

    @field_validator("scratch_dataset")
    @classmethod
    def _scratch(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                check_dataset_name(value, "")
            except ConfigError:
                raise ValueError(
                    "must be a dataset below a pool, e.g. tank/zfs-offsite-drill (letters, "
                    "digits, space and _ . : -; no @, # or empty part)"
                ) from None
        return value


MAX_CYCLE_RUNS = 366  # a daily verify's year


class VerifySettings(SettingsSection):
    """How much of the archive each verify reads back: a rotation, so its cost stays bounded."""

    cycle_runs: int = Field(
        4,
        description="Every stored file is read back in full at least once every this many "
        "verify runs (new files at once); 1 reads every file every run.",
        json_schema_extra={"minimum": 1, "maximum": MAX_CYCLE_RUNS},
    )

    @field_validator("cycle_runs")
    @classmethod
    def _cycle(cls, value: int) -> int:
        if not 1 <= value <= MAX_CYCLE_RUNS:
            raise ValueError(
                f"must be a number of verify runs from 1 to {MAX_CYCLE_RUNS}, e.g. 4 "
                "(every file is read back at least every 4th run; 1: every file every run)"
            )
        return value


class LockSettings(SettingsSection):
    """The writer lock of each member directory: one run writes a member at a time."""

    wait_seconds: Annotated[float, within(0, 86400, "a number of seconds")] = Field(
        30.0, description="How long a run waits for another run's lock before it fails."
    )
    stale_seconds: Annotated[float, within(120, 86400, "a number of seconds")] = Field(
        600.0,
        description="A lock untouched this long is dead (its holder touches it every 30 s).",
    )


class Settings(SettingsSection):
    """Everything the tool needs; secrets are SecretStr and never logged."""

    source: SourceSettings = Field(default_factory=SourceSettings)
    target: TargetSettings = Field(default_factory=TargetSettings)
    compression: CompressionSettings = Field(default_factory=CompressionSettings)
    encryption: EncryptionSettings = Field(default_factory=EncryptionSettings)
    drill: DrillSettings = Field(default_factory=DrillSettings)
    verify: VerifySettings = Field(default_factory=VerifySettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    full: FullSettings = Field(default_factory=FullSettings)
    lock: LockSettings = Field(default_factory=LockSettings)
    protect_base: Literal["auto", "bookmark", "hold", "off"] = Field(
        "auto",
        description="Mark the newest uploaded snapshot so the next incremental has a base: "
        "bookmark (OpenZFS), hold (zfs-fuse, old ZFS), auto picks, off.",
    )
    max_parallel: Annotated[int, within(1, 16, "a number of members")] = Field(
        2, description="Members streamed at once."
    )
    retries: Annotated[int, within(0, 20, "a number of retries")] = Field(
        3, description="Attempts after a transient failure."
    )
    retry_delay: Annotated[float, within(0, 3600, "a number of seconds")] = Field(
        10.0, description="Seconds before the first retry; doubles each time, jittered."
    )

    # Where each value came from ("/etc/zfs-offsite.toml:9", "env ZFS_OFFSITE_…"), filled by
    # load_settings, so an error found after loading (no such pool) names the line to fix.
    _origins: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def scratch_dataset(self) -> str:
        return self.drill.scratch_dataset or f"{self.source.pool}/zfs-offsite-drill"

    def origin(self, name: str) -> str:
        """Where the dotted setting `name` came from, as `zfs-offsite config` shows it."""
        parts = name.split(".")
        for end in range(len(parts), 0, -1):  # a section set whole (env JSON) holds its keys
            if (found := self._origins.get(".".join(parts[:end]))) is not None:
                return found
        return str(sources.DEFAULT)


class SettingsError(ConfigError):
    """Every wrong setting at once; `lines` holds one self-contained line per problem."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = tuple(lines)
        head = [f"the settings have {len(lines)} errors:"] if len(lines) > 1 else []
        super().__init__("\n".join(head + lines))


@dataclass(frozen=True)
class SettingLine:
    """One effective setting for `zfs-offsite config`: dotted name, shown value, origin."""

    name: str
    value: str  # secrets are REDACTED
    source: str  # "/etc/zfs-offsite.toml:12", "env ZFS_OFFSITE_…", ".env:3", "argument", "default"


def _config_hint() -> str:
    return f"fix --config or ${CONFIG_ENV}"


def resolve_config_file(explicit: Path | None = None) -> Path | None:
    """The TOML file to read: explicit, then $ZFS_OFFSITE_CONFIG, then the usual places."""
    if explicit is not None or os.environ.get(CONFIG_ENV):
        path = explicit or Path(os.environ[CONFIG_ENV])
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist: {_config_hint()}") from None
        except OSError as exc:
            raise ConfigError(
                f"config file {path} cannot be read ({exc.strerror}): {_config_hint()}"
            ) from None
        if not stat.S_ISREG(mode):
            raise ConfigError(
                f"config file {path} is {path_kind(mode)}, not a TOML file: {_config_hint()}"
            )
        return path
    return next((p for p in CONFIG_CANDIDATES if p.is_file()), None)


def _gather(config_file: Path | None, overrides: dict[str, Any]) -> sources.Layer:
    """Every source's values, merged weakest first, with all their errors."""
    layers: list[sources.Layer] = []
    try:
        path = resolve_config_file(config_file)
    except ConfigError as exc:
        layers.append(sources.Layer(errors=[str(exc)]))
        path = None
    if path is not None:
        layers.append(sources.from_toml(path, Settings, _config_hint()))
    layers.append(sources.from_dotenv(DOTENV, Settings, ENV_PREFIX, ENV_EXEMPT))
    layers.append(sources.from_environ(os.environ, Settings, ENV_PREFIX, ENV_EXEMPT))
    layers.append(sources.from_arguments(overrides, Settings))
    return sources.merge(layers)


def _field_key(loc: tuple[int | str, ...]) -> tuple[sources.Key, str]:
    """The settings key of an error location and its display name (`source.datasets[0]`)."""
    key: list[str] = []
    name = ""
    model: type[BaseModel] | None = Settings
    for part in loc:
        if isinstance(part, int):
            name += f"[{part}]"
            continue
        if model is None or part not in model.model_fields:
            break  # a union member tag or similar: not a setting name
        key.append(part)
        name += ("." if name else "") + part
        model = sources.section_model(model.model_fields[part].annotation)
    return tuple(key), name


def _validate(gathered: sources.Layer) -> Settings:
    """The settings, or SettingsError listing the sources' errors and every invalid value."""
    lines = list(gathered.errors)
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(gathered.data)
    except ValidationError as exc:
        messages: dict[tuple[str, str], list[str]] = {}
        for error in exc.errors():
            key, name = _field_key(error["loc"])
            where = (name or "settings", str(gathered.origin_of(key)))
            message = error["msg"].removeprefix("Value error, ")
            if message not in messages.setdefault(where, []):
                messages[where].append(message)
        for (name, origin), texts in messages.items():
            lines.append(f"setting {name} ({origin}): {'; or '.join(texts)}")
    if lines or settings is None:
        raise SettingsError(lines)
    settings._origins = {sources.dotted(k): str(v) for k, v in gathered.origins.items()}
    return settings


def load_settings(config_file: Path | None = None, **overrides: object) -> Settings:
    """Load settings; raise SettingsError (a ConfigError) naming every problem and its source."""
    return _validate(_gather(config_file, overrides))


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


def _lines(model: BaseModel, gathered: sources.Layer, prefix: sources.Key) -> list[SettingLine]:
    lines: list[SettingLine] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        key = (*prefix, name)
        if isinstance(value, BaseModel):
            lines.extend(_lines(value, gathered, key))
        else:
            origin = gathered.origin_of(key) if key in gathered.origins else sources.DEFAULT
            shown = f"0o{value:03o}" if key == ("target", "umask") else _shown(value)
            lines.append(SettingLine(sources.dotted(key), shown, str(origin)))
    return lines


def explain_settings(config_file: Path | None = None) -> list[SettingLine]:
    """Every effective setting with where it came from; SettingsError if any is wrong."""
    gathered = _gather(config_file, {})
    settings = _validate(gathered)
    return _lines(settings, gathered, ())


def _found_file(config_file: Path | None) -> tuple[Path | None, str]:
    """The config file that would be read and why, without checking that it is valid."""
    if config_file is not None:
        return config_file, ""
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]), f" (from ${CONFIG_ENV})"
    return next((p for p in CONFIG_CANDIDATES if p.is_file()), None), ""


def config_origin(config_file: Path | None = None) -> str:
    """The line every command prints first: which config file it reads, or that none was found.

    Cheap and never raises: a broken file or setting is load_settings' to report.
    """
    try:
        path, why = _found_file(config_file)
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
