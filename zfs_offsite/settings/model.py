"""The root settings model: its sections, its top-level fields and where it loads from.

The sources and their order are pydantic-settings': `settings_customise_sources`
returns them strongest first (arguments, environment, `.env`, TOML); each is
one of `settings.sources`, which check keys and record origins.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PrivateAttr
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from zfs_offsite.settings.checks import within
from zfs_offsite.settings.origins import DEFAULT
from zfs_offsite.settings.sections import (
    CompressionSettings,
    DrillSettings,
    EncryptionSettings,
    FullSettings,
    LockSettings,
    RetentionSettings,
    SourceSettings,
    TargetSettings,
    VerifySettings,
)
from zfs_offsite.settings.sources import (
    ArgumentSource,
    DotenvSource,
    EnvSource,
    TomlSource,
    current_request,
)

ENV_PREFIX = "ZFS_OFFSITE_"


class Settings(BaseSettings):
    """Everything the tool needs; secrets are SecretStr and never logged.

    A pydantic-settings `BaseSettings`: building it reads its sources
    (`settings_customise_sources`). Call `load_settings`, which also reports every
    problem at once with where it was set; `Settings()` alone raises at the first
    source with a problem.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_file=".env",
        case_sensitive=False,
        extra="forbid",
        # As the sections: a default is not validated at each load (BaseSettings would stat
        # the demo's target directory for target.url's default every time).
        validate_default=False,
    )

    source: SourceSettings = Field(
        default_factory=SourceSettings,
        description="Which datasets are backed up and where their zfs runs (locally, or on a "
        "NAS over SSH).",
    )
    target: TargetSettings = Field(
        default_factory=TargetSettings,
        description="The backup server or directory the archive is written to, and how to log in.",
    )
    compression: CompressionSettings = Field(
        default_factory=CompressionSettings,
        description="How backup streams are compressed before they are stored.",
    )
    encryption: EncryptionSettings = Field(
        default_factory=EncryptionSettings,
        description="age encryption of the stored files: public keys for backups, the secret "
        "key only where restores run.",
    )
    drill: DrillSettings = Field(
        default_factory=DrillSettings,
        description="The restore drill: where it receives a member, and how soon each member "
        "gets its turn.",
    )
    verify: VerifySettings = Field(
        default_factory=VerifySettings,
        description="How much of the archive each verify reads back in full (a rotation, so its "
        "cost stays bounded).",
    )
    retention: RetentionSettings = Field(
        default_factory=RetentionSettings,
        description="Which restore points prune keeps; unset, prune deletes no backup.",
    )
    full: FullSettings = Field(
        default_factory=FullSettings,
        description="When a new full backup starts a new chain, so chains stay short and prunable.",
    )
    lock: LockSettings = Field(
        default_factory=LockSettings,
        description="The writer lock of each member directory: one run writes a member at a time.",
    )
    protect_base: Literal["auto", "bookmark", "hold", "off"] = Field(
        "auto",
        description="Mark the newest uploaded snapshot so the next incremental has a base: "
        "bookmark (OpenZFS), hold (zfs-fuse, old ZFS), auto picks, off.",
    )
    max_parallel: Annotated[int, within(1, 16, "a number of members")] = Field(
        2, description="How many members are streamed to the target at once (1 to 16)."
    )
    retries: Annotated[int, within(0, 20, "a number of retries")] = Field(
        3,
        description="How often a member is tried again after a transient failure such as a "
        "dropped connection (0 to 20).",
    )
    retry_delay: Annotated[float, within(0, 3600, "a number of seconds")] = Field(
        10.0,
        description="Seconds before the first retry (0 to 3600); doubles with each retry, "
        "jittered.",
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
        return str(DEFAULT)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, environment, `.env`, TOML: strongest first; no secrets directory."""
        request = current_request()
        arguments = (
            init_settings.init_kwargs if isinstance(init_settings, InitSettingsSource) else {}
        )
        return (
            ArgumentSource(settings_cls, arguments, request),
            EnvSource(settings_cls, request),
            DotenvSource(settings_cls, request),
            TomlSource(settings_cls, request),
        )
