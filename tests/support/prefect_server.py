"""A real `prefect server start` for the tests that need one (SQLite in a temp PREFECT_HOME)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.services import free_port

PREFECT = str(Path(sys.executable).with_name("prefect"))


@dataclass
class PrefectServer:
    """A running `prefect server start`: the clients' environment, and the process to kill."""

    env: dict[str, str]
    process: subprocess.Popen[bytes]

    def kill(self) -> None:
        """SIGKILL, as an OOM kill or a crashed host would end it: no goodbye to any client."""
        self.process.kill()
        self.process.wait(timeout=30)


@contextmanager
def prefect_server(
    home: Path, startup_seconds: float = 180, settings: dict[str, str] | None = None
) -> Iterator[dict[str, str]]:
    """Start a server; yields the environment that points clients (and workers) at it.

    `settings` are the server's own (PREFECT_API_DATABASE_CONNECTION_URL, service
    loop intervals); they are not passed on to clients.
    """
    with running_prefect_server(home, startup_seconds, settings) as server:
        yield server.env


@contextmanager
def running_prefect_server(
    home: Path, startup_seconds: float = 180, settings: dict[str, str] | None = None
) -> Iterator[PrefectServer]:
    """As `prefect_server`, but yields the server itself, for a test that kills it."""
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "COLUMNS": "10000",
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
    }
    log = (home / "server.log").open("wb")
    server = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env | (settings or {}),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + startup_seconds
        while True:
            try:
                with urllib.request.urlopen(f"{env['PREFECT_API_URL']}/health", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((home / "server.log").read_text()[-3000:]) from None
                time.sleep(0.5)
        yield PrefectServer(env, server)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def drain_prefect_workers() -> None:
    """Send this process's queued logs and events now, while their server still answers.

    A flow run in-process against a server that the test then stops leaves
    workers bound to it; a later test harness's teardown drains every worker
    and would wait on that dead server for ever.
    """
    import inspect

    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        for result in (APILogWorker.drain_all(), EventsWorker.drain_all()):
            if inspect.isawaitable(result):
                await result

    run_coro_as_sync(drain())
