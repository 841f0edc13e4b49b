"""Simulated ZFS hosts with real workers against a real Prefect server, and a webhook sink."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from deployments.naming import deployment_name, work_pool
from tests.support.services import Pool

REPO = Path(__file__).resolve().parents[2]


SLOW_LINK = 1_000_000  # bytes/s upward on hostb's link to the backup server


HEARTBEAT_SECONDS = 30  # Prefect's shortest flow-run heartbeat interval


SERVER_SETTINGS = {
    "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
    "PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_LOOP_SECONDS": "5",
}


HOST_OVERRIDES = {
    "PREFECT_WORKER_QUERY_SECONDS": "2",
    "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS),
}


def wait_for(check: Callable[[], object], seconds: float, what: str, log: Path | None = None):
    """Poll `check` until it returns something truthy; fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        if result := check():
            return result
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
            pytest.fail(f"{what}: not within {seconds:g}s\n{tail}")
        time.sleep(0.5)


def clean_environ() -> dict[str, str]:
    """This process's environment without Prefect, tool or host variables."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "OFFSITE_", "ZFS_OFFSITE_", "PYTHONPATH"))
    }


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as systemd's EnvironmentFile and deploy.sh read them."""
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.lstrip().startswith("#")}


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children first found through /proc)."""
    found: list[int] = []
    queue = [pid]
    while queue:
        parent = queue.pop()
        for task in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                kids = [int(k) for k in task.read_text().split()]
            except OSError:
                continue
            found += kids
            queue += kids
    return found


@dataclass
class SimulatedHost:
    """One ZFS host of the multi-host setup: pool, settings, env file, worker process."""

    name: str
    pool: Pool
    archive: Path
    directory: Path
    api_url: str
    worker: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    @property
    def env_file(self) -> Path:
        return self.directory / "default" / "zfs-offsite"

    @property
    def settings_file(self) -> Path:
        return self.directory / "zfs-offsite.toml"

    @property
    def prefect_home(self) -> Path:
        return self.directory / "prefect-home"

    @property
    def nightly(self) -> str:
        return f"zfs-offsite-backup/{deployment_name('nightly', self.name)}"

    @property
    def log(self) -> Path:
        return self.logs[-1]

    def env(self) -> dict[str, str]:
        """A process on this host: its env file, its own ~/.prefect."""
        return (
            clean_environ()
            | read_env_file(self.env_file)
            | {"PREFECT_HOME": str(self.prefect_home)}
        )

    def write_files(self, target: dict[str, object]) -> None:
        """The settings file and the env file, as scripts/install.sh lays them out."""
        self.prefect_home.mkdir(parents=True, exist_ok=True)
        lines = [
            "max_parallel = 2",
            "retry_delay = 1",
            "[source]",
            f'pool = "{self.pool.name}"',
            'dataset_prefix = "elabfs-"',
            "[target]",
            *(f"{k} = {json.dumps(v)}" for k, v in target.items()),
            "",
        ]
        self.settings_file.write_text("\n".join(lines))
        self.env_file.parent.mkdir(parents=True, exist_ok=True)
        env = {
            "OFFSITE_HOME": str(REPO),
            "OFFSITE_HOST": self.name,
            "ZFS_OFFSITE_CONFIG": str(self.settings_file),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            **HOST_OVERRIDES,
        }
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))

    def deploy(self) -> None:
        """deployments/deploy.sh with this host's env file: work pool + deployments."""
        done = subprocess.run(
            ["sh", str(REPO / "deployments" / "deploy.sh")],
            env=clean_environ()
            | {"OFFSITE_ENV_FILE": str(self.env_file), "PREFECT_HOME": str(self.prefect_home)},
            cwd=self.directory,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"deploy.sh for {self.name}:\n{done.stdout}\n{done.stderr}"

    def start_worker(self) -> None:
        """The worker unit's command, under this host's host name."""
        log = self.directory / f"worker-{len(self.logs)}.log"
        self.logs.append(log)
        env = self.env()
        prefect = str(Path(env["OFFSITE_HOME"]) / ".venv" / "bin" / "prefect")
        pool = work_pool(self.name)
        self.worker = subprocess.Popen(
            [
                *(sys.executable, "-m", "tests.support.as_host", self.name),
                *(prefect, "worker", "start", "--type", "process", "--pool", pool, "--name", pool),
            ],
            env=env,
            cwd=REPO,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill_worker(self) -> list[int]:
        """SIGKILL the worker and every process it started: the host died. Returns the pids."""
        if self.worker is None:
            return []
        pids = [self.worker.pid, *descendants(self.worker.pid)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.worker.wait(timeout=30)
        self.worker = None
        return pids

    def stop_worker(self) -> None:
        if self.worker is None:
            return
        children = descendants(self.worker.pid)
        self.worker.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.worker.wait(timeout=20)
        for pid in [self.worker.pid, *children]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.worker.wait(timeout=30)
        self.worker = None


class Webhook:
    """A tiny HTTP endpoint on 127.0.0.1 that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        received: list[dict[str, object]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    received.append(json.loads(body))
                except ValueError:
                    received.append({"raw": body.decode(errors="replace")})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.received = received
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/alert"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def save_webhook_block(host: SimulatedHost, webhook: Webhook, name: str) -> str:
    """A custom-webhook notification block posting {subject, body} to `webhook`; its slug/name."""
    make_block = (
        "from prefect.blocks.notifications import CustomWebhookNotificationBlock as B;"
        f"B(name={name!r}, url={webhook.url!r}, "
        "json_data={'subject': '{{subject}}', 'body': '{{body}}'})"
        f".save({name!r}, overwrite=True)"
    )
    subprocess.run([sys.executable, "-c", make_block], env=host.env(), cwd=REPO, check=True)
    return f"custom-webhook/{name}"


def install_alerts(
    host: SimulatedHost, block: str, hours: float, zombie_seconds: float
) -> list[str]:
    """deployments/alerts.py as an admin runs it on that host (its nightly by default)."""
    done = subprocess.run(
        [
            *(sys.executable, "deployments/alerts.py", "--block", block),
            *("--hours", str(hours), "--zombie-seconds", str(zombie_seconds)),
        ],
        env=host.env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()
