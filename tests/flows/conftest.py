"""One Prefect test harness per session, with result storage in a temp dir."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness


@pytest.fixture(scope="session", autouse=True)
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    results = tmp_path_factory.mktemp("prefect-results")
    os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = str(results)
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    with prefect_test_harness(server_startup_timeout=120):
        yield


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
