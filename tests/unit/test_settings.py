from __future__ import annotations

from pathlib import Path

import pytest

from zfs_offsite.errors import ConfigError
from zfs_offsite.naming import Compression
from zfs_offsite.settings import load_settings, parse_target_url

EXAMPLE = Path(__file__).parents[2] / "examples" / "seed-deployment.toml"


def test_defaults_are_the_demo() -> None:
    settings = load_settings()
    assert settings.source.pool == "zfs-offsite-demo"
    assert settings.target.parsed.scheme == "file"
    assert settings.compression.algorithm is Compression.ZSTD


def test_seed_example_reproduces_the_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(EXAMPLE)
    assert settings.source.pool == "Datenspeicher"
    assert settings.source.dataset_prefix == "elabfs-"
    assert settings.compression.algorithm is Compression.GZIP
    url = settings.target.parsed
    assert (url.user, url.host, url.path) == (
        "zfs_snap_backup",
        "etha.cpi.imtek.uni-freiburg.de",
        "zfs-backups",
    )
    assert settings.retention.rules is not None and len(settings.retention.rules) == 4
    assert settings.full.after_days == 30 and settings.scratch_dataset.endswith("-drill")


def test_bad_policy_in_toml_is_one_line_naming_the_file(tmp_path: Path) -> None:
    config = tmp_path / "z.toml"
    config.write_text('[retention]\npolicy = "weekly 12 weeks"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    message = str(caught.value)
    assert message.startswith("setting retention.policy (ZFS_OFFSITE_RETENTION__POLICY) in ")
    assert "'weekly 12 weeks' is not a rule" in message and "\n" not in message


def test_environment_overrides_toml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZFS_OFFSITE_CONFIG", str(EXAMPLE))
    monkeypatch.setenv("ZFS_OFFSITE_COMPRESSION__ALGORITHM", "zstd")
    monkeypatch.setenv("ZFS_OFFSITE_TARGET__KEY_PASSPHRASE", "hunter2")
    settings = load_settings()
    assert settings.compression.algorithm is Compression.ZSTD
    assert "hunter2" not in repr(settings)
    assert settings.target.endpoint().passphrase == "hunter2"
    assert "hunter2" not in repr(settings.target.endpoint())


@pytest.mark.parametrize(
    ("env", "value", "fragment"),
    [
        ("ZFS_OFFSITE_TARGET__URL", "ftp://x/y", "setting target.url (ZFS_OFFSITE_TARGET__URL)"),
        ("ZFS_OFFSITE_TARGET__URL", "sftp://host/path", "needs user and host"),
        ("ZFS_OFFSITE_COMPRESSION__ALGORITHM", "bzip2", "compression.algorithm"),
        ("ZFS_OFFSITE_SOURCE__SELECT_PROPERTY", "backup", "user property with a colon"),
        ("ZFS_OFFSITE_MAX_PARALLEL", "0", "max_parallel"),
    ],
)
def test_bad_settings_fail_with_one_line(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does-not-exist\.toml does not exist"):
        load_settings(tmp_path / "does-not-exist.toml")


def test_target_urls() -> None:
    assert parse_target_url("sftp://u@h/~/zfs-backups").path == "zfs-backups"
    assert parse_target_url("sftp://u@h:2222/srv/b").port == 2222
    assert parse_target_url("file:///srv/b").path == "/srv/b"
