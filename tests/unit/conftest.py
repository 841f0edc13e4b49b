"""Fixtures the unit tests share."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zfs_offsite.settings import ENV_PREFIX, files


@pytest.fixture(autouse=True)
def no_system_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """This machine's /etc/zfs-offsite.toml never reaches a unit test.

    The search still names /etc/zfs-offsite.toml; it is looked up under an empty
    directory instead, which a test may fill to play the host's file.
    """
    root = tmp_path_factory.mktemp("system-root")
    monkeypatch.setattr(files, "system_root", root)
    return root


@pytest.fixture
def clean_settings_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ZFS_OFFSITE_* variable, .env or ./zfs-offsite.toml from the caller leaks in."""
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
