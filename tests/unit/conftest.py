"""Fixtures the unit tests share."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zfs_offsite.settings import ENV_PREFIX


@pytest.fixture
def clean_settings_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ZFS_OFFSITE_* variable, .env or ./zfs-offsite.toml from the caller leaks in."""
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
