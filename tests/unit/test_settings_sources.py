"""The settings load through pydantic-settings, from the files in their documented order.

The host's /etc/zfs-offsite.toml is played by a file under the `no_system_config`
fixture's directory: the tool still names it /etc/zfs-offsite.toml, and this
machine's real /etc is never read.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel
from pydantic_settings import BaseSettings

from zfs_offsite.settings import (
    Settings,
    SettingsError,
    config_origin,
    explain_settings,
    load_settings,
)
from zfs_offsite.settings.origins import section_model

pytestmark = pytest.mark.usefixtures("clean_settings_environment")


def system_file(root: Path, text: str) -> None:
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc" / "zfs-offsite.toml").write_text(text)


def origins() -> dict[str, str]:
    return {line.name: line.source for line in explain_settings()}


def test_the_system_file_is_read_and_named_as_etc(no_system_config: Path) -> None:
    system_file(no_system_config, '# the host\n[source]\npool = "tank"\n')
    assert load_settings().source.pool == "tank"
    assert origins()["source.pool"] == "/etc/zfs-offsite.toml:3"
    assert config_origin() == "config: /etc/zfs-offsite.toml"


def test_search_order_explicit_then_variable_then_cwd_then_etc(
    no_system_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system_file(no_system_config, '[source]\npool = "etc"\n')
    Path("zfs-offsite.toml").write_text('[source]\npool = "cwd"\n')
    assert load_settings().source.pool == "cwd"
    by_variable = tmp_path / "variable.toml"
    by_variable.write_text('[source]\npool = "variable"\n')
    monkeypatch.setenv("ZFS_OFFSITE_CONFIG", str(by_variable))
    assert load_settings().source.pool == "variable"
    explicit = tmp_path / "explicit.toml"
    explicit.write_text('[source]\npool = "explicit"\n')
    assert load_settings(explicit).source.pool == "explicit"


def test_a_broken_system_file_is_reported_like_any_other(no_system_config: Path) -> None:
    system_file(no_system_config, "[source]\npol = 1\n")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.lines == (
        "unknown setting source.pol (/etc/zfs-offsite.toml:2): did you mean source.pool?",
    )


def test_settings_is_a_pydantic_settings_model_that_reads_its_sources(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`Settings()` itself reads the environment, .env and the file, not only load_settings."""
    assert issubclass(Settings, BaseSettings)
    monkeypatch.setenv("ZFS_OFFSITE_TARGET__TIMEOUT", "5")
    Path(".env").write_text("ZFS_OFFSITE_RETRIES=7\n")
    Path("zfs-offsite.toml").write_text("max_parallel = 4\nretries = 1\n")
    built = Settings()
    assert (built.target.timeout, built.retries, built.max_parallel) == (5, 7, 4)
    assert Settings(retries=0).retries == 0  # an argument is the strongest source


def test_settings_built_directly_still_refuses_an_unknown_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZFS_OFFSITE_TARGET__ULR", "file:///srv")
    with pytest.raises(SettingsError, match="did you mean ZFS_OFFSITE_TARGET__URL"):
        Settings()


def models(model: type[BaseModel]) -> list[type[BaseModel]]:
    found = [model]
    for info in model.model_fields.values():
        if (section := section_model(info.annotation)) is not None:
            found += models(section)
    return found


def test_every_field_of_every_settings_model_has_a_description() -> None:
    """The configuration reference is generated from these: a field without one is a hole."""
    assert len(models(Settings)) == 11  # the root, its nine sections and target.s3
    undescribed = [
        f"{model.__name__}.{name}"
        for model in models(Settings)
        for name, info in model.model_fields.items()
        if len((info.description or "").split()) < 4
    ]
    assert undescribed == []
