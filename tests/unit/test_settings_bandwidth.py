"""`target.bandwidth`: read from TOML or the environment, refused in one line when wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import time
from pathlib import Path

import pytest

from zfs_offsite.settings import ENV_PREFIX, SettingsError, load_settings

ZFS_OFFSITE = Path(sys.executable).parent / "zfs-offsite"


# No ZFS_OFFSITE_* variable, .env or ./zfs-offsite.toml from the caller leaks in.
pytestmark = pytest.mark.usefixtures("clean_settings_environment")


def test_unlimited_by_default() -> None:
    target = load_settings().target
    assert target.bandwidth is None and target.bandwidth_limit.unlimited


def test_from_toml_by_time_window(tmp_path: Path) -> None:
    config = tmp_path / "z.toml"
    config.write_text('[target]\nbandwidth = "08:00-20:00 10MB/s, 40MB/s"\n')
    limit = load_settings(config).target.bandwidth_limit
    assert limit.rate_at(time(12, 0)) == 10e6 and limit.rate_at(time(2, 0)) == 40e6


def test_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZFS_OFFSITE_TARGET__BANDWIDTH", "800KiB/s")
    assert load_settings().target.bandwidth_limit.rate_at(time(0, 0)) == 800 * 1024


def test_a_bad_rate_is_one_line_naming_the_setting_its_source_and_the_fix(tmp_path: Path) -> None:
    config = tmp_path / "z.toml"
    config.write_text('[target]\nurl = "file:///srv/b"\nbandwidth = "40MBs"\n')
    with pytest.raises(SettingsError) as caught:
        load_settings(config)
    assert str(caught.value) == (
        f"setting target.bandwidth ({config}:3): '40MBs' is not a rate: "
        "write e.g. 40MB/s or '08:00-20:00 10MB/s, 40MB/s'"
    )


def test_config_check_refuses_it_with_exit_2(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith(ENV_PREFIX)}
    empty = tmp_path / "empty.toml"  # so this host's /etc/zfs-offsite.toml is not read
    empty.write_text("")
    env = clean | {
        "ZFS_OFFSITE_TARGET__BANDWIDTH": "08:00-20:00 10Mb/s, 40MB/s",
        "ZFS_OFFSITE_CONFIG": str(empty),
    }
    result = subprocess.run(
        [str(ZFS_OFFSITE), "config", "--check"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: setting target.bandwidth (env ZFS_OFFSITE_TARGET__BANDWIDTH): "
        "'08:00-20:00 10Mb/s': Mb/s is ambiguous: write MB/s for bytes or Mbit/s for bits"
    ]
