"""The backup flow on the real Prefect engine, real zfs-fuse and the real sshd."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import (
    DeploymentScheduleCreate,
    GlobalConcurrencyLimitCreate,
)
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)
from prefect.client.schemas.schedules import CronSchedule
from prefect.flow_engine import run_flow
from prefect.states import AwaitingRetry, Scheduled

from flows.backup import backup_flow
from tests.support.flow_runs import sftp_env, table_artifact, task_runs
from tests.support.proxy import CuttingProxy
from tests.support.services import Pool, SshServer
from tests.support.zfsdata import MEMBERS, create_member, snapshot, write_member_data
from zfs_offsite.errors import MembersFailed
from zfs_offsite.report.run_report import artifact_key, send_limit_name
from zfs_offsite.stream.progress import StreamProgress, listening

pytestmark = pytest.mark.integration


def test_flow_backs_up_all_members_and_reports(
    source_pool: Pool, sftp_dir: Path, sshd: SshServer, flow_env: Callable[..., None]
) -> None:
    flow_env(sftp_env(source_pool, sftp_dir, sshd))
    reports: list[StreamProgress] = []
    with listening(reports.append):  # what the CLI's progress bars draw
        outcomes = backup_flow()
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
    again = backup_flow()
    assert [o.action for o in again] == ["up to date"] * 3


def test_failed_member_fails_the_run_and_ui_retry_reruns_only_it(
    source_pool: Pool, sftp_dir: Path, sshd: SshServer, flow_env: Callable[..., None]
) -> None:
    flow_env(sftp_env(source_pool, sftp_dir, sshd))
    blocked = sftp_dir / "bob"
    blocked.mkdir(mode=0o755)  # owned by root: the SFTP user cannot write there
    state = backup_flow(return_state=True)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, MembersFailed) and "bob" in str(error)
    assert {o.member: o.action for o in error.outcomes} == {
        "alice": "full",
        "bob": "failed",
        "carol": "full",
    }
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        first_run = client.read_flow_run(flow_run_id)
    name = first_run.name
    assert "retry" not in first_run.tags and not any(
        t.startswith("attempt-") for t in first_run.tags
    )
    assert name.startswith(f"backup-{os.uname().nodename}-") and name.count("-") >= 5
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
        after = client.read_flow_run(flow_run_id)
    assert after.run_count == 2
    assert after.name == name  # the night keeps its name through the Retry
    # ... and the runs list shows it was retried: a tag per retried run and its attempt.
    assert {"retry", "attempt-2"} <= set(after.tags)
    runs = task_runs(flow_run_id)
    upload_states = {name: r.state.name for name, r in runs.items() if name.startswith("upload-")}
    assert upload_states["upload-alice"] == "Cached"
    assert upload_states["upload-carol"] == "Cached"
    assert upload_states["upload-bob"] == "Completed"
    assert alice_file.stat().st_mtime_ns == alice_mtime  # not sent again
    assert any((sftp_dir / "bob").glob("*.zst"))
    # No edges between members: an upload's one graph edge is the night's batch plan.
    plan_ids = {r.id: name for name, r in runs.items()}
    for member in MEMBERS:
        upstream = {
            plan_ids.get(i.id, str(i.id))
            for inputs in runs[f"upload-{member}"].task_inputs.values()
            for i in inputs
            if getattr(i, "id", None)
        }
        assert upstream == {"plan-members"}
    # The retry's table says which rows were uploaded now, and that attempt 1 failed.
    with get_client(sync_client=True) as client:
        versions = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[artifact_key("backup", os.uname().nodename)])
            ),
            sort="CREATED_DESC",
        )
    latest = versions[0]
    # Both attempts wrote the same key; each version's description names its attempt.
    mine = [v for v in reversed(versions) if v.flow_run_id == flow_run_id]
    assert [(v.description or "").split("; ")[1] for v in mine] == [
        "attempt 1 of this run",
        "attempt 2 of this run",
    ]
    assert "attempt 2 of this run; attempt 1 failed: backup failed for 1 member(s): bob" in (
        latest.description or ""
    )
    rows = {
        r["member"]: r
        for r in (json.loads(latest.data) if isinstance(latest.data, str) else latest.data)
    }
    assert rows["bob"]["source"] == "uploaded now" and rows["alice"]["source"] == "from cache"
    assert {r["attempt"] for r in rows.values()} == {2}
    assert rows["bob"]["started"] < rows["bob"]["finished"]
    assert rows["bob"]["target_guid"].isdigit()


def test_member_that_cannot_be_planned_fails_alone(
    source_pool: Pool, sftp_dir: Path, sshd: SshServer, flow_env: Callable[..., None]
) -> None:
    flow_env(sftp_env(source_pool, sftp_dir, sshd))
    (sftp_dir / "bob").mkdir(mode=0o700)  # owned by root: the SFTP user cannot even list it
    state = backup_flow(return_state=True)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, MembersFailed)
    assert {o.member: o.action for o in error.outcomes} == {
        "alice": "full",
        "bob": "failed",
        "carol": "full",
    }
    (bob,) = [o for o in error.outcomes if o.member == "bob"]
    assert bob.error is not None and "bob" in bob.error
    # One batch plans the night; only the member it could not plan got a task of its own.
    runs = task_runs(state.state_details.flow_run_id)
    assert runs["plan-members"].state.name == "Completed"
    assert runs["plan-bob"].state.is_failed()
    assert not {"plan-alice", "plan-carol"} & set(runs)
    assert any((sftp_dir / "alice").glob("*.zst")) and any((sftp_dir / "carol").glob("*.zst"))


def test_send_limit_is_held_once_per_run_and_caps_its_streams(
    source_pool: Pool,
    sftp_dir: Path,
    sshd: SshServer,
    flow_env: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    flow_env(sftp_env(source_pool, sftp_dir, sshd))
    name = send_limit_name(os.uname().nodename)
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
    try:
        with caplog.at_level(logging.INFO):
            state = backup_flow(return_state=True)
        assert state.is_completed()
        with get_client(sync_client=True) as client:
            assert client.read_global_concurrency_limit_by_name(name).active_slots == 0
        said = [
            r.getMessage()
            for r in caplog.records
            if name in r.getMessage() and r.name.startswith("prefect")
        ]
        assert said == [f"holding 1 slot(s) of concurrency limit {name} for this run's sends"]
        runs = task_runs(state.state_details.flow_run_id)
        spans = sorted(
            (r.start_time, r.end_time) for n, r in runs.items() if n.startswith("upload-")
        )
        assert len(spans) == 3 and all(end is not None for _, end in spans)
        # A limit of 1 slot: one stream at a time, although max_parallel is 2.
        assert all(end <= start for (_, end), (start, _) in pairwise(spans))
    finally:
        with get_client(sync_client=True) as client:
            client.delete_global_concurrency_limit_by_name(name)


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
        state = backup_flow(return_state=True)
    finally:
        proxy.close()
    assert proxy.cut.is_set()
    assert state.is_completed()
    runs = task_runs(state.state_details.flow_run_id)
    assert runs["upload-fred"].run_count == 2
    assert runs["upload-fred"].state.name == "Completed"
    # The report says the upload was tried twice, and how the first try ended.
    [row] = table_artifact(artifact_key("backup", os.uname().nodename))
    assert row["upload_tries"] == 2
    [first] = row["earlier_tries"]
    assert first.startswith("try 1 failed after ") and "fred" in first, first
    assert (sftp_dir / "fred" / "elabfs-fred@auto-20190806.0200-1w.zst").is_file()


def test_dry_run_and_unknown_member(
    source_pool: Pool, sftp_dir: Path, sshd: SshServer, flow_env: Callable[..., None]
) -> None:
    flow_env(sftp_env(source_pool, sftp_dir, sshd))
    state = backup_flow(members=["alice"], dry_run=True, return_state=True)
    outcomes = state.result()
    assert [(o.member, o.action) for o in outcomes] == [("alice", "full (dry run)")]
    assert not any(sftp_dir.rglob("*.zst"))
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.name.endswith("-dry-run-members-alice")
    assert {"dry-run", "partial"} <= set(run.tags)
    host = os.uname().nodename
    assert table_artifact(artifact_key("backup", host, "dry-run"))[0]["member"] == "alice"
    with get_client(sync_client=True) as client:  # the host's latest-night artifact is untouched
        nightly = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[artifact_key("backup", host)]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]),
            )
        )
    assert nightly == []
    state = backup_flow(members=["zed"], return_state=True)
    assert state.is_failed()
    assert "no member named zed" in str(state.result(raise_on_failure=False))


def test_run_names_hold_the_night_in_the_schedules_timezone(
    source_pool: Pool,
    sftp_dir: Path,
    sshd: SshServer,
    flow_env: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    flow_env(sftp_env(source_pool, sftp_dir, sshd))
    night = datetime(2026, 1, 15, 1, 30, tzinfo=UTC)  # 02:30 in Berlin, in winter
    with get_client(sync_client=True) as client:
        unnamed = client.create_flow_run(
            backup_flow, parameters={"dry_run": True}, state=Scheduled(scheduled_time=night)
        )
        chosen = client.create_flow_run(
            backup_flow, name="audit-q1-check", parameters={"dry_run": True}
        )
        # A deployment whose schedule runs on New York time: its nights are named in that zone.
        deployment = client.create_deployment(
            client.create_flow(backup_flow),
            name="names-in-new-york",
            schedules=[
                DeploymentScheduleCreate(
                    schedule=CronSchedule(cron="30 20 * * *", timezone="America/New_York"),
                    active=False,
                )
            ],
        )
        scheduled = client.create_flow_run_from_deployment(
            deployment, parameters={"dry_run": True}, state=Scheduled(scheduled_time=night)
        )
    for flow_run in (unnamed, chosen, scheduled):
        state = run_flow(
            backup_flow, flow_run=flow_run, parameters=flow_run.parameters, return_type="state"
        )
        assert state.is_completed()
    with get_client(sync_client=True) as client:
        names = [client.read_flow_run(r.id).name for r in (unnamed, chosen, scheduled)]
    host = os.uname().nodename
    assert names == [
        f"backup-{host}-2026-01-15-0230-dry-run",
        "audit-q1-check",
        f"backup-{host}-2026-01-14-2030-dry-run",
    ]
    # A dry run sends nothing, so the optional send limit is not even looked up; a real run
    # says once at INFO that it is absent, never a WARNING per upload.
    caplog.clear()
    with caplog.at_level(logging.INFO):
        backup_flow(members=["alice"])
    absent = [r for r in caplog.records if "zfs-send-" in r.getMessage() and r.name != "httpx"]
    assert {(r.levelno, r.getMessage()) for r in absent} == {
        (
            logging.INFO,
            f"no concurrency limit zfs-send-{os.uname().nodename} on the server: "
            "sends are limited per run only",
        )
    }
