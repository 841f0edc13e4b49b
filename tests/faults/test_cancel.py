"""A Prefect Cancel of a running backup (as the UI sends it): the stream stops, nothing kept."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Cancelling

from tests.support.faults import SlowTarget, leftovers, python_env, stored_files
from tests.support.prefect_server import prefect_server
from tests.support.services import Pool, SshServer

pytestmark = pytest.mark.integration


def partial_bytes(archive: Path) -> int:
    return sum(p.stat().st_size for p in archive.rglob("*.partial"))


def test_cancel_through_the_api_stops_the_stream(
    big_member: Pool,
    sftp_dir: Path,
    sshd: SshServer,
    slow_target: Callable[[int], SlowTarget],
    tmp_path: Path,
) -> None:
    home = tmp_path / "prefect"
    home.mkdir()
    with prefect_server(home) as server:
        env = server | slow_target(1_000_000).env(sshd, big_member, sftp_dir)
        # The runner looks for scheduled runs every 10 s by default (Prefect's setting): a run
        # waited up to that long to start. Every 2 s, as the operations tier's workers poll.
        env |= {"PREFECT_RUNNER_POLL_FREQUENCY": "2"}
        runner = subprocess.Popen(
            [sys.executable, "-m", "tests.support.serve_backup"],
            env=python_env(env),
            stdout=(home / "runner.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            with (
                temporary_settings(updates={PREFECT_API_URL: server["PREFECT_API_URL"]}),
                get_client(sync_client=True) as client,
            ):
                deadline = time.monotonic() + 120
                while True:
                    try:
                        deployment = client.read_deployment_by_name(
                            "zfs-offsite-backup/fault-cancel"
                        )
                        break
                    except Exception:
                        assert time.monotonic() < deadline, (home / "runner.log").read_text()
                        time.sleep(1)
                run = client.create_flow_run_from_deployment(deployment.id)
                deadline = time.monotonic() + 240
                while partial_bytes(sftp_dir) < 2_000_000:
                    assert time.monotonic() < deadline, (home / "runner.log").read_text()[-3000:]
                    time.sleep(0.2)
                client.set_flow_run_state(run.id, Cancelling(), force=True)
                asked = time.monotonic()
                while not (state := client.read_flow_run(run.id).state).is_final():
                    assert time.monotonic() - asked < 90, (home / "runner.log").read_text()[-3000:]
                    time.sleep(0.5)
                assert state.is_cancelled(), state
                # The stream stopped and cleaned up well before the 24 s upload could end.
                while leftovers(sftp_dir) and time.monotonic() - asked < 20:
                    time.sleep(0.2)
        finally:
            runner.terminate()
            runner.wait(timeout=60)
    assert stored_files(sftp_dir) == []
    assert leftovers(sftp_dir) == []
