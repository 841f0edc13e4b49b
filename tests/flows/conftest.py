"""Flow tests: every one runs against the session's Prefect test server (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from flows.backup import backup_flow
from tests.support.flow_runs import sftp_env
from tests.support.services import Pool, SshServer


@pytest.fixture(autouse=True)
def prefect_harness(prefect: None) -> None:
    """Every flow test runs against the session's one Prefect test server."""


@pytest.fixture
def flow_env(monkeypatch: pytest.MonkeyPatch) -> object:
    """Point the flow's settings (read from the environment, as on a host) at test services."""

    def apply(settings_env: dict[str, str]) -> None:
        for key, value in settings_env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("ZFS_OFFSITE_RETRY_DELAY", "0.2")

    return apply


@pytest.fixture
def backed_up(
    source_pool: Pool, sftp_dir: Path, sshd: SshServer, flow_env: Callable[..., None]
) -> tuple[Pool, Path]:
    """The standard pool backed up once by the flow (three full backups), and its archive."""
    flow_env(sftp_env(source_pool, sftp_dir, sshd))
    assert [o.action for o in backup_flow()] == ["full"] * 3
    return source_pool, sftp_dir
