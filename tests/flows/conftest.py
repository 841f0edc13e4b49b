"""Flow tests: every one runs against the session's Prefect test server (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


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


def env_for(pool: str, url: str, key: Path, known_hosts: Path) -> dict[str, str]:
    return {
        "ZFS_OFFSITE_SOURCE__POOL": pool,
        "ZFS_OFFSITE_TARGET__URL": url,
        "ZFS_OFFSITE_TARGET__KEY_FILE": str(key),
        "ZFS_OFFSITE_TARGET__KNOWN_HOSTS": str(known_hosts),
        "ZFS_OFFSITE_TARGET__TIMEOUT": "10",
    }
