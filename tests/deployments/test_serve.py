"""`zfs-offsite serve` against a real `prefect server start`: its deployments live next
to prefect.yaml's, its hint reaches the server, and SIGINT/SIGTERM stop it in seconds."""

from __future__ import annotations

import json
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from deployments.naming import deployment_name, served_name
from deployments.serve import JOBS
from tests.support.deployments import HOST, REPO

ZFS_OFFSITE = str(Path(sys.executable).with_name("zfs-offsite"))
STOP_BUDGET = 15.0


class Served:
    """A `zfs-offsite serve` in its own session (a terminal's Ctrl-C reaches the group)."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [ZFS_OFFSITE, "serve"],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                line = ""
            if line is None or time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} from serve:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if text in line:
                return line

    def stop(self, sig: signal.Signals) -> float:
        """Signal the whole group as a terminal does; seconds until the process ended."""
        start = time.monotonic()
        os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
        elapsed = time.monotonic() - start
        while (line := self._queue.get(timeout=10)) is not None:
            self.lines.append(line)
        return elapsed


def serve_env(base: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """Settings that make an accidental run harmless: no such pool, a scratch target."""
    config = tmp_path / "zfs-offsite.toml"
    config.write_text(
        f'[source]\npool = "zot-no-such-pool"\n\n[target]\nurl = "file://{tmp_path}/archive"\n'
    )
    return {**base, "OFFSITE_HOST": HOST, "ZFS_OFFSITE_CONFIG": str(config)}


def deployments_on(env: dict[str, str]) -> dict[str, dict[str, object]]:
    """Every deployment on the server, by `flow/deployment`, read from the REST API."""

    def post(path: str) -> list[dict[str, object]]:
        request = urllib.request.Request(
            env["PREFECT_API_URL"] + path,
            data=b"{}",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)  # type: ignore[no-any-return]

    flows = {f["id"]: f["name"] for f in post("/flows/filter")}
    return {f"{flows[d['flow_id']]}/{d['name']}": d for d in post("/deployments/filter")}


def test_serve_and_prefect_yaml_deployments_coexist(
    deployed: dict[str, str], tmp_path: Path
) -> None:
    served = Served(serve_env(deployed, tmp_path), tmp_path)
    try:
        hint = served.wait_for("start one now:", timeout=180)
        on_server = deployments_on(deployed)
        for job in JOBS:
            flow = next(name.split("/")[0] for name in on_server if f"/{job.name}-" in name)
            mine = on_server[f"{flow}/{deployment_name(job.name, HOST)}"]
            theirs = on_server[f"{flow}/{served_name(job.name, HOST)}"]
            # prefect.yaml's deployment kept its pool and pull step: a worker can run it
            assert mine["work_pool_name"] == "zfs-offsite-nas"
            assert mine["pull_steps"], mine
            assert theirs["work_pool_name"] is None
            assert mine["id"] != theirs["id"]
        # the printed hint, run from another process, reaches the server serve uses
        command = shlex.split(hint.split("start one now:", 1)[1])
        assert Path(command[0]).name == "prefect" and command[1:3] == ["deployment", "run"]
        started = subprocess.run(command, env=deployed, cwd=REPO, capture_output=True, text=True)
        assert started.returncode == 0, started.stdout + started.stderr
        assert "Created flow run" in started.stdout
    finally:
        served.stop(signal.SIGTERM)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_prints_next_runs_and_stops_in_seconds(
    server_env: dict[str, str], tmp_path: Path, sig: signal.Signals
) -> None:
    served = Served(serve_env(server_env, tmp_path), tmp_path)
    served.wait_for("start one now:", timeout=180)
    elapsed = served.stop(sig)
    output = "\n".join(served.lines)
    assert served.proc.returncode == 0, output
    assert elapsed < STOP_BUDGET, output
    assert len(served.lines) < 20, output
    assert "Traceback" not in output
    assert served.lines[-1] == f"zfs-offsite serve: {sig.name} received, stopping"
    nightly = next(ln for ln in served.lines if "/nightly-nas-served " in ln)
    assert "next run " in nightly and "(30 2 * * *, Europe/Berlin)" in nightly
    assert sum("next run " in ln for ln in served.lines) == sum(1 for j in JOBS if j.cron)


def test_serve_without_a_server_stops_in_seconds_and_says_where_runs_go(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    """No PREFECT_API_URL: a temporary server that Ctrl-C takes down at the same moment."""
    env = serve_env(server_env, tmp_path)
    del env["PREFECT_API_URL"]
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "300"  # a busy 2-core machine
    served = Served(env, tmp_path)
    hint = served.wait_for("runs go to a temporary server", timeout=360)
    assert "PREFECT_API_URL=" in hint and "prefect deployment run" not in hint
    elapsed = served.stop(signal.SIGINT)
    output = "\n".join(served.lines)
    assert elapsed < STOP_BUDGET, output
    assert "Traceback" not in output
    assert len(served.lines) < 20, output


@pytest.mark.parametrize(
    ("args", "extra_env", "message"),
    [
        (["--cron", "61 2 * * *"], {}, 'Invalid cron string: "61 2 * * *"'),
        (["--timezone", "Europe/Nowhere"], {}, "--timezone 'Europe/Nowhere': unknown time zone"),
        ([], {"OFFSITE_HOST": "NAS_1"}, "OFFSITE_HOST='NAS_1': use lowercase letters"),
    ],
    ids=["cron", "timezone", "host"],
)
def test_serve_rejects_bad_input_in_one_line(
    tmp_path: Path, args: list[str], extra_env: dict[str, str], message: str
) -> None:
    env = serve_env({**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"}, tmp_path)
    done = subprocess.run(
        [ZFS_OFFSITE, "serve", *args],
        env={**env, **extra_env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"zfs-offsite serve: {message}")
