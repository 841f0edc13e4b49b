"""`zfs-offsite history` against a real `prefect server start` holding real backup runs.

The runs are executed in this process against that server (as a worker would
report them), including a night that failed for one member and was retried
the way the UI's Retry does it; the command then reads them back.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.flow_engine import run_flow
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_RESULTS_LOCAL_STORAGE_PATH,
    temporary_settings,
)
from prefect.states import AwaitingRetry

from flows.backup import backup_flow
from tests.support.cli import Cli, base_env
from tests.support.flow_runs import env_for
from tests.support.prefect_server import drain_prefect_workers, prefect_server
from tests.support.services import Pool, SshServer
from tests.support.zfsdata import MEMBERS

pytestmark = pytest.mark.integration


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    home = tmp_path / "server"
    home.mkdir()
    with prefect_server(home) as env:
        yield env["PREFECT_API_URL"]


def run_nights(
    api_url: str, sftp_dir: Path, results: Path, retry: Callable[[], None]
) -> dict[str, Any]:
    """A failed-then-retried night, then a dry run of alice; returns the first night's run."""
    with temporary_settings(
        {PREFECT_API_URL: api_url, PREFECT_RESULTS_LOCAL_STORAGE_PATH: results}
    ):
        state = backup_flow(return_state=True)
        assert state.is_failed()
        flow_run_id = state.state_details.flow_run_id
        retry()
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(flow_run_id, AwaitingRetry(), force=True)
            flow_run = client.read_flow_run(flow_run_id)
        assert run_flow(backup_flow, flow_run=flow_run, return_type="state").is_completed()
        assert backup_flow(members=["alice"], dry_run=True, return_state=True).is_completed()
        with get_client(sync_client=True) as client:
            first = client.read_flow_run(flow_run_id).model_dump()
        drain_prefect_workers()  # before the server stops: a later harness would wait on it
        return first


def test_history_shows_each_night_per_member_with_failures_and_retries(
    source_pool: Pool,
    sftp_dir: Path,
    sshd: SshServer,
    server: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    url = f"sftp://{sshd.user}@127.0.0.1:{sshd.port}{sftp_dir}"
    settings = env_for(source_pool.name, url, sshd.client_key, sshd.known_hosts)
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ZFS_OFFSITE_RETRY_DELAY", "0.2")
    blocked = sftp_dir / "bob"
    blocked.mkdir(mode=0o755)  # owned by root: the SFTP user cannot write there

    def unblock() -> None:
        os.chown(blocked, os.stat(sftp_dir).st_uid, os.stat(sftp_dir).st_gid)

    night = run_nights(server, sftp_dir, tmp_path / "results", unblock)

    (tmp_path / "cwd").mkdir()
    cli = Cli(
        base_env(tmp_path / "client") | settings | {"PREFECT_API_URL": server}, tmp_path / "cwd"
    )
    done = cli("history", "--json", "--since", "1d")
    assert done.code == 0, done.output
    rows = json.loads(done.stdout)["rows"]
    first = {r["member"]: r for r in rows if r["flow_run_id"] == str(night["id"])}
    assert set(first) == set(MEMBERS)
    for member, row in first.items():
        assert row["night"] == night["name"]
        assert (row["state"], row["attempts"], row["action"]) == ("Completed", 2, "full")
        stored = sftp_dir / row["remote_path"]
        assert int(row["stored_bytes"]) == stored.stat().st_size
        assert row["sha256"] == hashlib.sha256(stored.read_bytes()).hexdigest()
        assert row["url"].endswith(f"/runs/flow-run/{night['id']}")
        assert row["report_key"] == f"backup-{os.uname().nodename}"
        expected = "from cache" if member != "bob" else "uploaded now"
        assert row["source"] == expected
    # The night is green now, but bob's failed first attempt stays in the history.
    assert first["bob"]["earlier_attempts"][0].startswith("attempt 1: failed: ")
    assert "permission denied" in first["bob"]["earlier_attempts"][0]
    assert first["alice"]["earlier_attempts"] == ["attempt 1: full"]
    dry = [r for r in rows if "dry-run" in r["tags"]]
    assert [(r["member"], r["action"]) for r in dry] == [("alice", "up to date")]
    assert dry[0]["night"].endswith("-dry-run-members-alice")
    assert dry[0]["report_key"].endswith("-dry-run")

    only_bob = cli("history", "--member", "bob", "--json")
    assert only_bob.code == 0, only_bob.output
    assert {r["member"] for r in json.loads(only_bob.stdout)["rows"]} == {"bob"}

    table = cli("history", "--member", "bob", "--view", "detail")
    assert table.code == 0, table.output
    assert night["name"] in table.stdout and "attempt 1: failed" in table.stdout


def test_history_without_any_server_to_reach_or_start_is_one_line_and_exit_3(
    tmp_path: Path,
) -> None:
    """No PREFECT_API_URL and no local server allowed: nothing to read, said in one line."""
    (tmp_path / "cwd").mkdir()
    cli = Cli(base_env(tmp_path / "prefect"), tmp_path / "cwd")
    done = cli("history", PREFECT_SERVER_EPHEMERAL_ENABLED="false", timeout=120)
    assert done.code == 3
    assert done.err_lines == [
        "error: no Prefect server: set PREFECT_API_URL, or PREFECT_SERVER_EPHEMERAL_ENABLED=true"
    ]
    assert done.stdout == ""
    bad = cli("history", "--since", "ninety days", PREFECT_API_URL="http://127.0.0.1:9/api")
    assert bad.code == 2
    assert bad.err_lines[-1].startswith("error: --since ninety days: give an age like 90d")
