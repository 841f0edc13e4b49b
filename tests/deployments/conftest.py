"""One real `prefect server start` for the deployment tests (SQLite in a temp PREFECT_HOME)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest

from deployments.naming import work_pool
from tests.support.deployments import HOST, PREFECT, REPO, prefect


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def server_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment of a process that talks to the server (PREFECT_API_URL set)."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OFFSITE_", "ZFS_OFFSITE_"))},
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "COLUMNS": "10000",  # rich must not wrap JSON output
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
    }
    log = (home / "server.log").open("wb")
    server = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{env['PREFECT_API_URL']}/health", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((home / "server.log").read_text()) from None
                time.sleep(0.5)
        yield env
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture(scope="session")
def deployed(server_env: dict[str, str]) -> dict[str, str]:
    """prefect.yaml deployed for host `nas` from this checkout, as deployments/deploy.sh does."""
    env = {**server_env, "OFFSITE_HOST": HOST, "OFFSITE_HOME": str(REPO)}
    prefect(env, "work-pool", "create", work_pool(HOST), "--type", "process")
    prefect(env, "deploy", "--prefect-file", "deployments/prefect.yaml", "--all")
    return server_env
