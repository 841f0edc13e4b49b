"""The nine sections of the settings, and target.s3 in target: one model each, all described.

Each field's `description` is the one sentence the configuration reference shows
a storage admin (units and what the default means), so it is written for them.
The root model that holds these sections, and loads them, is `settings.model`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from zfs_offsite.archive.names import Compression
from zfs_offsite.archive.recipients import Recipient, parse_recipient
from zfs_offsite.errors import ConfigError
from zfs_offsite.settings.checks import (
    must_be_a_directory,
    parse_umask,
    read_recipients_file,
    within,
)
from zfs_offsite.settings.urls import TargetUrl, parse_target_url, url_port
from zfs_offsite.values.bandwidth import Bandwidth, parse_bandwidth
from zfs_offsite.values.policy import Rule, parse_policy
from zfs_offsite.zfs.model import check_dataset_name

DEMO_POOL = "zfs-offsite-demo"
DEMO_TARGET = "file:///var/tmp/zfs-offsite-demo/archive"


class SettingsSection(BaseModel):
    """Base of every settings model: an unknown key is an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid")


class SourceSettings(SettingsSection):
    """Which datasets are backed up and where their `zfs` runs."""

    pool: str = Field(
        DEMO_POOL,
        description="The ZFS pool whose datasets are backed up; the default is the demo's "
        "file-backed pool.",
    )
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
        None,
        description="Pull mode: the private SSH key that logs in to the NAS (required with "
        "ssh_url).",
    )
    known_hosts: Path | None = Field(
        None,
        description="Pull mode: the known_hosts file holding the NAS's host key; unset: "
        "~/.ssh/known_hosts of the user running the tool.",
    )
    key_passphrase: SecretStr | None = Field(
        None,
        description="Passphrase of source.key_file if it has one; secret: set it in the "
        "environment (ZFS_OFFSITE_SOURCE__KEY_PASSPHRASE), never shown.",
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


# S3's storage classes an object is read from at once (the API's StorageClass names).
_STORAGE_CLASSES = (
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
    "EXPRESS_ONEZONE",
)
_ARCHIVE_CLASSES = ("GLACIER", "DEEP_ARCHIVE")  # a restore request before any read

# Keys an admin might try for S3 credentials; each is refused with the fix, not "unknown key".
_CREDENTIAL_WORDS = ("key", "secret", "token", "password", "credential")


class S3Settings(SettingsSection):
    """How an s3:// target is reached; its credentials are never settings.

    Never here: access keys and secrets are read by the AWS SDK from the
    environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) or
    the shared credentials file (~/.aws/credentials, section `profile`), or from
    a Prefect `aws-credentials` block that `credentials_block` names, so they
    never reach a TOML file, flow parameters, logs or `zfs-offsite config`.
    """

    endpoint_url: str | None = Field(
        None,
        description="The S3 endpoint of a store that is not AWS (Ceph RGW, MinIO, Wasabi, B2), "
        "e.g. https://s3.example.org or http://10.0.0.5:7480; unset: AWS (or AWS_ENDPOINT_URL).",
    )
    region: str | None = Field(
        None,
        description="The region the request signature names, e.g. us-east-1 (most non-AWS "
        "stores accept any); unset: the AWS chain's (AWS_DEFAULT_REGION, the profile's).",
    )
    addressing_style: Literal["auto", "path", "virtual"] = Field(
        "auto",
        description="path: https://endpoint/bucket/key (Ceph RGW and MinIO without wildcard "
        "DNS); virtual: https://bucket.endpoint/key; auto: path with endpoint_url set, "
        "virtual on AWS.",
    )
    profile: str | None = Field(
        None,
        description="The section of ~/.aws/credentials and ~/.aws/config to use (AWS_PROFILE "
        "works too); unset: the environment's keys, else the default profile.",
    )
    credentials_block: str | None = Field(
        None,
        description="The name of a Prefect `aws-credentials` block (prefect-aws's "
        "AwsCredentials) on the server of PREFECT_API_URL whose access key id, secret and "
        "session token sign the requests (its region_name applies when region is unset); they "
        "win over AWS_* variables and ~/.aws; not with profile; unset: the AWS chain.",
    )
    single_writer: bool = Field(
        False,
        description="true: the admin guarantees that only one run ever writes this archive, so "
        "a store without conditional PUTs (If-None-Match, If-Match) is used anyway and its "
        "member locks are plain writes that a racing run may overwrite; false: such a store "
        "is refused (Ceph RGW 16 and AWS S3 have them).",
    )
    object_lock_days: Annotated[int, within(0, 36500, "a number of days")] = Field(
        0,
        description="S3 Object Lock: each new backup file and its sidecars are kept from "
        "deletion and overwriting for this many days (prune keeps them till then); the bucket "
        "must have been created with object lock; 0: none asked for (0 to 36500).",
    )
    object_lock_mode: Literal["GOVERNANCE", "COMPLIANCE"] = Field(
        "GOVERNANCE",
        description="GOVERNANCE (default): a key with s3:BypassGovernanceRetention (not the "
        "backup host's) can still delete early, to recover from a mistake; COMPLIANCE: nobody "
        "can before the date, not even the store's root account.",
    )
    storage_class: str | None = Field(
        None,
        description="S3 storage class of new backup files (sidecars, records and the lock "
        "stay STANDARD: they are read often), one of S3's names, e.g. STANDARD_IA; Ceph RGW "
        "accepts STANDARD and the classes its admin placed; unset: the bucket's default.",
    )

    @staticmethod
    def refused_key_hint(name: str) -> str | None:
        """The fix for a credential key put here (settings/origins.py asks before "unknown")."""
        if not any(word in name.lower() for word in _CREDENTIAL_WORDS):
            return None
        return (
            "S3 credentials are never read from the settings (they would be shown and "
            "logged): remove it, and set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the "
            "environment, name a section of ~/.aws/credentials in target.s3.profile or a "
            "Prefect aws-credentials block in target.s3.credentials_block"
        )

    @field_validator("credentials_block")
    @classmethod
    def _block_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[a-z0-9-]+", value):
            raise ValueError(
                "must be the name of a Prefect block: lowercase letters, digits and dashes, "
                "e.g. offsite-s3 (the name, never the keys)"
            )
        return value

    @model_validator(mode="after")
    def _one_source(self) -> S3Settings:
        if self.credentials_block and self.profile:
            raise ValueError(
                "credentials_block and profile both name S3 keys: keep one (unset "
                "target.s3.profile to use the block, or target.s3.credentials_block for ~/.aws)"
            )
        return self

    @field_validator("storage_class")
    @classmethod
    def _storage_class(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value in _ARCHIVE_CLASSES:
            raise ValueError(
                f"{value} objects must be restored before they can be read, and verify, "
                "restore and drill read them directly: choose one read at once, e.g. "
                "STANDARD_IA or GLACIER_IR"
            )
        if value not in _STORAGE_CLASSES:
            raise ValueError(f"must be one of S3's storage classes: {', '.join(_STORAGE_CLASSES)}")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        example = "https://s3.example.org or http://127.0.0.1:7480"
        if "@" in parts.netloc:
            raise ValueError(
                "the endpoint URL holds credentials, which this tool refuses: remove them "
                f"({example}) and set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead"
            )
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http:// or https:// URL with a host, e.g. {example}")
        url_port(value, example)
        return value


class TargetSettings(SettingsSection):
    """The backup server (or directory) and the SSH credentials for it."""

    url: str = Field(
        DEMO_TARGET,
        description="Where the archive lives: sftp://user@host:port/path (/~/dir: below the "
        "login directory), file:///path or s3://bucket/prefix (see target.s3); no password "
        "in the URL. Default: the demo's local directory.",
    )
    key_file: Path | None = Field(
        None, description="The private SSH key that logs in to the backup server (sftp://)."
    )
    known_hosts: Path | None = Field(
        None,
        description="The known_hosts file holding the backup server's host key; unset: "
        "~/.ssh/known_hosts of the user running the tool.",
    )
    key_passphrase: SecretStr | None = Field(
        None,
        description="Passphrase of target.key_file if it has one; secret: set it in the "
        "environment (ZFS_OFFSITE_TARGET__KEY_PASSPHRASE), never shown.",
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

    s3: S3Settings = Field(
        default_factory=S3Settings,
        description="How an s3:// target is reached (endpoint, region, addressing, profile); "
        "credentials only from the AWS environment or shared credentials file.",
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
            must_be_a_directory(Path(parsed.path))
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
        Compression.ZSTD,
        description="zstd (new archives, the default) or gzip (the seed's format, `.gz` files); "
        "existing files keep theirs.",
    )
    level: int | None = Field(
        None,
        description="Compression level: zstd 1 to 22, gzip 0 to 3 (isal); unset: zstd 3, gzip 1.",
    )
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
            keys = read_recipients_file(value)
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
                keys += read_recipients_file(self.recipients_file)
            except ValueError as exc:
                raise ConfigError(f"setting encryption.recipients_file: {exc}") from None
        return list({key.key: key for key in keys}.values())


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
