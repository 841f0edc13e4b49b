"""The backup flow on the real Prefect engine, real zfs-fuse and the real sshd."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.flow_engine import run_flow
from prefect.states import AwaitingRetry

from flows.backup import BackupFailed, BackupParameters, backup_flow
from tests.conftest import MEMBERS
from tests.flows.conftest import env_for
from tests.support.proxy import CuttingProxy
from tests.support.services import Pool, SshServer
from tests.support.zfsdata import create_member, snapshot, write_member_data
from zfs_offsite.progress import StreamProgress, listening
from zfs_offsite.report import artifact_key

pytestmark = pytest.mark.integration


def sftp_env(
    pool: Pool,
    archive: Path,
    sshd: SshServer,
    port: int | None = None,
    known_hosts: Path | None = None,
) -> dict[str, str]:
    url = f"sftp://{sshd.user}@127.0.0.1:{port or sshd.port}{archive}"
    return env_for(pool.name, url, sshd.client_key, known_hosts or sshd.known_hosts)


def task_runs(flow_run_id: UUID) -> dict[str, Any]:
    """The flow run's task runs by name."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    # A retried flow run keeps its old task runs: the newest per name wins.
    return {r.name: r for r in sorted(runs, key=lambda r: r.created)}


def table_artifact(host_key: str) -> list[dict[str, Any]]:
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[host_key])),
            limit=1,
            sort="CREATED_DESC",
        )
    data = artifacts[0].data
    return json.loads(data) if isinstance(data, str) else data


def test_flow_backs_up_all_members_and_reports(
    source_pool: Pool, sftp_dir: Path, sshd: SshServer, flow_env: Callable[..., None]
) -> None:
    flow_env(sftp_env(source_pool, sftp_dir, sshd))
    reports: list[StreamProgress] = []
    with listening(reports.append):  # what the CLI's progress bars draw
        outcomes = backup_flow(BackupParameters())
    assert [o.action for o in outcomes] == ["full"] * 3
    finished = {r.member: r for r in reports if r.done}
    assert set(finished) == set(MEMBERS)
    for o in outcomes:
        assert o.result is not None and o.result.stream is not None
        assert finished[o.member].raw_bytes == o.result.stream.raw_bytes
    rows = table_artifact(artifact_key("backup", os.uname().nodename))
    assert [r["member"] for r in rows] == list(MEMBERS)
    for r in rows:
        stored = sftp_dir / r["member"] / Path(r["remote_path"]).name
        assert r["action"] == "full"
        assert int(r["stored_bytes"]) == stored.stat().st_size
        assert int(r["raw_bytes"]) > int(r["stored_bytes"]) > 0
        assert float(r["ratio"]) > 1.0 and float(r["mb_per_s"]) > 0
        assert len(r["sha256"]) == 64 and r["error"] == ""
    again = backup_flow(BackupParameters())
    assert [o.action for o in again] == ["up to date"] * 3


def test_failed_member_fails_the_run_and_ui_retry_reruns_only_it(
    source_pool: Pool, sftp_dir: Path, sshd: SshServer, flow_env: Callable[..., None]
) -> None:
    flow_env(sftp_env(source_pool, sftp_dir, sshd))
    blocked = sftp_dir / "bob"
    blocked.mkdir(mode=0o755)  # owned by root: the SFTP user cannot write there
    state = backup_flow(BackupParameters(), return_state=True)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, BackupFailed) and "bob" in str(error)
    assert {o.member: o.action for o in error.outcomes} == {
        "alice": "full",
        "bob": "failed",
        "carol": "full",
    }
    flow_run_id = state.state_details.flow_run_id
    first = task_runs(flow_run_id)
    assert first["upload-bob"].run_count == 1  # permission denied is permanent: no retry
    alice_file = next((sftp_dir / "alice").glob("*.zst"))
    alice_mtime = alice_file.stat().st_mtime_ns

    # What the UI's Retry does: the same flow run goes back to AwaitingRetry and runs again.
    os.chown(blocked, os.stat(sftp_dir).st_uid, os.stat(sftp_dir).st_gid)
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run_id, AwaitingRetry(), force=True)
        flow_run = client.read_flow_run(flow_run_id)
    retried = run_flow(backup_flow, flow_run=flow_run, parameters={}, return_type="state")
    assert retried.is_completed()
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(flow_run_id).run_count == 2
    runs = task_runs(flow_run_id)
    upload_states = {name: r.state.name for name, r in runs.items() if name.startswith("upload-")}
    assert upload_states["upload-alice"] == "Cached"
    assert upload_states["upload-carol"] == "Cached"
    assert upload_states["upload-bob"] == "Completed"
    assert alice_file.stat().st_mtime_ns == alice_mtime  # not sent again
    assert any((sftp_dir / "bob").glob("*.zst"))


def test_transient_error_is_retried(
    pool_factory: Callable[[], Pool],
    sftp_dir: Path,
    sshd: SshServer,
    flow_env: Callable[..., None],
    tmp_path: Path,
) -> None:
    pool = pool_factory()
    dataset = create_member(pool.name, "fred")
    write_member_data(pool.mountpoint / "elabfs-fred", 3, 8)
    snapshot(dataset, "auto-20190806.0200-1w")
    proxy = CuttingProxy(sshd.port, cut_after=4 * 1024 * 1024, cuts=1)
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts_line(proxy.port))
    flow_env(sftp_env(pool, sftp_dir, sshd, port=proxy.port, known_hosts=known))
    try:
        state = backup_flow(BackupParameters(), return_state=True)
    finally:
        proxy.close()
    assert proxy.cut.is_set()
    assert state.is_completed()
    runs = task_runs(state.state_details.flow_run_id)
    assert runs["upload-fred"].run_count == 2
    assert runs["upload-fred"].state.name == "Completed"
    assert (sftp_dir / "fred" / "elabfs-fred@auto-20190806.0200-1w.zst").is_file()


def test_dry_run_and_unknown_member(
    source_pool: Pool, sftp_dir: Path, sshd: SshServer, flow_env: Callable[..., None]
) -> None:
    flow_env(sftp_env(source_pool, sftp_dir, sshd))
    outcomes = backup_flow(BackupParameters(members=["alice"], dry_run=True))
    assert [(o.member, o.action) for o in outcomes] == [("alice", "full (dry run)")]
    assert not any(sftp_dir.rglob("*.zst"))
    state = backup_flow(BackupParameters(members=["zed"]), return_state=True)
    assert state.is_failed()
    assert "no member named zed" in str(state.result(raise_on_failure=False))
