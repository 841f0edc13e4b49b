"""`deployments/prefect.yaml` deployed against a real `prefect server start`, then read back."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from deployments.serve import JOBS, TIMEZONE

REPO = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A `prefect server start` of its own (SQLite in a temp PREFECT_HOME)."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    env = {
        **os.environ,
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


def prefect(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [PREFECT, "--no-prompt", *args], env=env, cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def deployed(server_env: dict[str, str]) -> dict[str, str]:
    prefect(server_env, "work-pool", "create", "zfs-offsite-nas", "--type", "process")
    prefect(server_env, "deploy", "--prefect-file", "deployments/prefect.yaml", "--all")
    return server_env


def inspect(env: dict[str, str], name: str) -> dict[str, object]:
    return json.loads(prefect(env, "deployment", "inspect", name, "--output", "json"))


def test_nightly_backup_deployment_reads_back(deployed: dict[str, str]) -> None:
    d = inspect(deployed, "zfs-offsite-backup/nightly")
    assert d["work_pool_name"] == "zfs-offsite-nas"
    assert d["entrypoint"] == "flows/backup.py:backup_flow"
    [schedule] = d["schedules"]
    assert schedule["schedule"]["cron"] == "30 2 * * *"
    assert schedule["schedule"]["timezone"] == "Europe/Berlin"
    assert schedule["active"] is True
    assert d["global_concurrency_limit"]["limit"] == 1
    assert d["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
    schema = d["parameter_openapi_schema"]
    params = schema["definitions"]["BackupParameters"]["properties"]
    assert set(params) == {"members", "force_full", "dry_run"}
    assert d["parameters"] == {}


DEPLOYMENTS = {
    "zfs-offsite-backup/nightly": {"members", "force_full", "dry_run"},
    "zfs-offsite-drill/weekly-drill": {"members"},
    "zfs-offsite-verify/weekly-verify": {"members", "mark"},
    "zfs-offsite-prune/weekly-prune": {"members", "dry_run"},
    "zfs-offsite-restore/on-demand": {
        "member",
        "destination",
        "snapshot",
        "force",
        "resume",
        "to_dir",
    },
}


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_every_deployment_matches_the_serve_jobs(deployed: dict[str, str], name: str) -> None:
    """`zfs-offsite serve` and the workers run the same flows on the same schedules."""
    d = inspect(deployed, name)
    (job,) = [j for j in JOBS if j.name == d["name"]]
    assert d["entrypoint"] == job.entrypoint
    if job.cron is None:
        assert d["schedules"] == []
    else:
        assert d["schedules"][0]["schedule"]["cron"] == job.cron
        assert d["schedules"][0]["schedule"]["timezone"] == TIMEZONE
        assert d["global_concurrency_limit"]["limit"] == 1
        assert d["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
    definitions = d["parameter_openapi_schema"]["definitions"]
    (model,) = definitions.values()
    assert set(model["properties"]) == DEPLOYMENTS[name]


def test_no_completed_run_alert_is_installed(deployed: dict[str, str]) -> None:
    env = deployed
    create_block = (
        "from prefect.blocks.notifications import CustomWebhookNotificationBlock as B;"
        "B(name='lab', url='http://127.0.0.1:9/hook', json_data={'text': '{{body}}'})"
        ".save('lab-alerts', overwrite=True)"
    )
    subprocess.run([sys.executable, "-c", create_block], env=env, cwd=REPO, check=True)
    ids = [
        subprocess.run(
            [sys.executable, "deployments/alerts.py", "--block", "custom-webhook/lab-alerts"],
            env=env,
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        for _ in range(2)  # a second install replaces the first
    ]
    automation = json.loads(prefect(env, "automation", "inspect", "--id", ids[1], "--json"))
    gone = subprocess.run(
        [PREFECT, "automation", "inspect", "--id", ids[0], "--json"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert "not found" in gone.stdout + gone.stderr
    trigger = automation["trigger"]
    assert trigger["posture"] == "Proactive"
    assert trigger["expect"] == ["prefect.flow-run.Completed"]
    assert trigger["within"] == 26 * 3600
    deployment_id = inspect(env, "zfs-offsite-backup/nightly")["id"]
    assert trigger["match_related"]["prefect.resource.id"] == f"prefect.deployment.{deployment_id}"
    assert automation["actions"][0]["type"] == "send-notification"


def test_serve_registers_every_job(monkeypatch: pytest.MonkeyPatch) -> None:
    import deployments.serve as serve_module

    served: list[object] = []
    monkeypatch.setattr(serve_module, "serve", lambda *d: served.extend(d))
    serve_module.serve_all("0 3 * * *")
    by_name = {d.name: d for d in served}  # type: ignore[attr-defined]
    assert set(by_name) == {j.name for j in JOBS}
    nightly = by_name["nightly"]
    assert nightly.schedules[0].schedule.cron == "0 3 * * *"  # the --cron override
    assert nightly.concurrency_limit == 1
    assert by_name["on-demand"].schedules == []
