"""Operations where they run: a real server on PostgreSQL, two hosts, their workers.

The steps share one harness (conftest.py) and run in this order: the schedule
fires on both hosts, a failed member is retried as the UI retries, a Cancel
stops a stream, a killed worker is detected and alerted on.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.schedules import CronSchedule
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import State

from flows.schedules import NIGHTLY_CRON, TIMEZONE
from tests.support.faults import leftovers, stored_files
from tests.support.operations import HEARTBEAT_SECONDS, REPO, SimulatedHost, Webhook, wait_for
from tests.support.zfsdata import create_member, snapshot, write_member_data

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(server: dict[str, str]) -> Iterator[SyncPrefectClient]:
    with (
        temporary_settings(updates={PREFECT_API_URL: server["PREFECT_API_URL"]}),
        get_client(sync_client=True) as api,
    ):
        yield api


def finished(client: SyncPrefectClient, run_id: UUID) -> FlowRun | None:
    run = client.read_flow_run(run_id)
    return run if run.state is not None and run.state.is_final() else None


def runs_of(client: SyncPrefectClient, host: SimulatedHost) -> list[FlowRun]:
    deployment = client.read_deployment_by_name(host.nightly)
    return client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
    )


def set_nightly_cron(client: SyncPrefectClient, host: SimulatedHost, cron: str) -> None:
    """Change the nightly schedule in place, as `prefect deployment schedule` or the UI does."""
    deployment = client.read_deployment_by_name(host.nightly)
    (schedule,) = deployment.schedules
    client.update_deployment_schedule(
        deployment.id, schedule.id, schedule=CronSchedule(cron=cron, timezone=TIMEZONE)
    )


def sidecars(archive: Path) -> list[dict[str, object]]:
    """The backups' `.json` sidecars: in the member directories, not the root's own records."""
    return [json.loads(p.read_text()) for p in sorted(archive.glob("*/*.json")) if p.is_file()]


def file_marks(archive: Path) -> dict[str, tuple[int, int]]:
    """Every file on the server: (inode, mtime); a file sent again gets new ones."""
    return {
        str(p.relative_to(archive)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in archive.rglob("*")
        if p.is_file()
    }


def backups(directory: Path) -> list[Path]:
    """Backup files under their final name, without their sidecars."""
    return [p for p in stored_files(directory) if p.name.endswith(".zst")]


def partial_bytes(archive: Path, besides: Collection[Path] = ()) -> int:
    """Bytes in partial files (other than `besides`): a stream in progress."""
    return sum(p.stat().st_size for p in archive.rglob("*.partial") if p not in besides)


def test_the_nightly_schedule_fires_on_both_hosts_at_once(
    hosts: dict[str, SimulatedHost], client: SyncPrefectClient
) -> None:
    for host in hosts.values():
        set_nightly_cron(client, host, "* * * * *")  # the test's override of 02:30
    try:

        def scheduled_done(host: SimulatedHost) -> FlowRun | None:
            done = [
                r
                for r in runs_of(client, host)
                if r.auto_scheduled and r.state is not None and r.state.is_final()
            ]
            return done[0] if done else None

        runs = {
            name: wait_for(
                lambda h=host: scheduled_done(h), 180, f"a scheduled run of {name}", host.log
            )
            for name, host in hosts.items()
        }
    finally:
        for host in hosts.values():
            set_nightly_cron(client, host, NIGHTLY_CRON)
    a, b = runs["hosta"], runs["hostb"]
    for name, run in runs.items():
        assert run.state is not None and run.state.type is StateType.COMPLETED, (name, run.state)
        assert run.work_pool_name == f"zfs-offsite-{name}", run.work_pool_name
        assert run.name.startswith(f"backup-{name}-"), run.name  # named on that host
    # The same minute's schedule, run by both workers side by side.
    assert a.expected_start_time == b.expected_start_time
    assert a.start_time and b.start_time and a.end_time and b.end_time
    # Neither waited for the other (each host's run lasts seconds; a start-up takes ~10 s).
    assert abs((a.start_time - b.start_time).total_seconds()) < 30, (a.start_time, b.start_time)
    # Each host's archive holds its own members' files, sent from that host only.
    for name, host in hosts.items():
        files = backups(host.archive)
        assert sorted(p.parent.name for p in files) == ["alice", "bob", "carol"], files
        found = sidecars(host.archive)
        assert len(found) == 3
        assert {s["source_host"] for s in found} == {name}
        assert all(str(s["dataset"]).startswith(f"{host.pool.name}/") for s in found)
    # The artifacts are keyed per host: each key's latest comes from that host's run.
    for name, run in runs.items():
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"backup-{name}"]))
        )
        assert artifacts, f"no artifact backup-{name}"
        assert {x.flow_run_id for x in artifacts} == {run.id}
    # Back on its nightly cron, no more runs are scheduled every minute.
    for host in hosts.values():
        deployment = client.read_deployment_by_name(host.nightly)
        assert deployment.schedules[0].schedule.cron == NIGHTLY_CRON


def test_a_failed_member_is_retried_as_the_ui_retries(
    hosts: dict[str, SimulatedHost], client: SyncPrefectClient
) -> None:
    host = hosts["hosta"]
    for seed, member in enumerate(("alice", "bob", "carol")):
        data = host.pool.mountpoint / f"elabfs-{member}"
        (data / "tuesday.txt").write_text(f"{member} {seed} changed on tuesday\n" * 1000)
        snapshot(f"{host.pool.name}/elabfs-{member}", "auto-20190807.0200-1w")
    bob_dir = host.archive / "bob"
    bob_dir.chmod(0o555)  # the backup server refuses bob's new file: this night fails
    try:
        deployment = client.read_deployment_by_name(host.nightly)
        run = client.create_flow_run_from_deployment(deployment.id)
        first = wait_for(lambda: finished(client, run.id), 180, "the first attempt", host.log)
    finally:
        bob_dir.chmod(0o755)
    assert first.state is not None and first.state.type is StateType.FAILED, first.state
    assert "bob" in (first.state.message or ""), first.state.message
    before = file_marks(host.archive)
    assert len(backups(host.archive / "alice")) == 2  # the full and tonight's incremental
    assert len(backups(bob_dir)) == 1
    # The run name carries the minute: retry in a later minute, so a rename would show.
    started = first.start_time
    assert started is not None
    minute = int(started.timestamp() // 60)
    wait_for(lambda: int(time.time() // 60) > minute, 65, "the next minute")

    # What the UI's Retry button sends: POST /flow_runs/{id}/set_state, not forced.
    retry = State(type=StateType.SCHEDULED, name="AwaitingRetry", message="Retry from the UI")
    client.set_flow_run_state(run.id, retry, force=False)
    second = wait_for(
        lambda: (r := finished(client, run.id)) and r.run_count == 2 and r,
        180,
        "the retried attempt",
        host.log,
    )
    assert second.state is not None and second.state.type is StateType.COMPLETED, second.state
    assert second.id == run.id

    uploads = {
        t.name: t.state.name if t.state else None
        for t in client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
        )
        if t.name.startswith("upload-") and t.flow_run_run_count == 2
    }
    assert uploads == {
        "upload-alice": "Cached",
        "upload-bob": "Completed",
        "upload-carol": "Cached",
    }
    after = file_marks(host.archive)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing sent twice
    new = sorted(set(after) - set(before))
    assert len(new) == 3 and all(k.startswith("bob/") for k in new), new  # file + 2 sidecars
    assert len(backups(bob_dir)) == 2
    assert leftovers(host.archive) == []
    # Last: the run keeps the name of its night through the retry.
    assert second.name == first.name, f"renamed by the retry: {first.name} -> {second.name}"


@pytest.fixture(scope="module")
def slow_member(hosts: dict[str, SimulatedHost]) -> str:
    """hostb gains `erin`, about 24 MB of incompressible data: 24 s over its slow link."""
    host = hosts["hostb"]
    dataset = create_member(host.pool.name, "erin")
    write_member_data(host.pool.mountpoint / "elabfs-erin", 7, 12)
    snapshot(dataset, "auto-20190806.0200-1w")
    return "erin"


def test_a_cancel_from_the_api_stops_the_stream(
    hosts: dict[str, SimulatedHost], client: SyncPrefectClient, slow_member: str
) -> None:
    host = hosts["hostb"]
    deployment = client.read_deployment_by_name(host.nightly)
    run = client.create_flow_run_from_deployment(deployment.id)
    wait_for(lambda: partial_bytes(host.archive) > 2_000_000, 180, "erin's stream", host.log)
    # What the UI's Cancel sends: a forced Cancelling state.
    client.set_flow_run_state(
        run.id, State(type=StateType.CANCELLING, name="Cancelling"), force=True
    )
    done = wait_for(lambda: finished(client, run.id), 90, "the cancelled run", host.log)
    assert done.state is not None and done.state.type is StateType.CANCELLED, done.state
    wait_for(lambda: not leftovers(host.archive), 20, f"cleanup: {leftovers(host.archive)}")
    assert (
        not (host.archive / slow_member).exists() or stored_files(host.archive / slow_member) == []
    )
    assert host.worker is not None and host.worker.poll() is None  # the worker lives on


def test_a_killed_worker_is_detected_and_alerted(
    hosts: dict[str, SimulatedHost],
    client: SyncPrefectClient,
    slow_member: str,
    webhook: Webhook,
    server: dict[str, str],
) -> None:
    host = hosts["hostb"]
    make_block = (
        "from prefect.blocks.notifications import CustomWebhookNotificationBlock as B;"
        f"B(name='ops', url={webhook.url!r}, "
        "json_data={'subject': '{{subject}}', 'body': '{{body}}'}).save('ops-alerts')"
    )
    subprocess.run([sys.executable, "-c", make_block], env=host.env(), cwd=REPO, check=True)
    zombie_after = HEARTBEAT_SECONDS + 15
    installed = subprocess.run(
        [
            *(sys.executable, "deployments/alerts.py", "--block", "custom-webhook/ops-alerts"),
            *("--hours", str(60 / 3600), "--zombie-seconds", str(zombie_after)),
        ],
        env=host.env(),  # its default deployment: this host's nightly
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stderr
    deployment = client.read_deployment_by_name(host.nightly)
    run = client.create_flow_run_from_deployment(deployment.id)
    earlier = set(host.archive.rglob("*.partial"))
    wait_for(
        lambda: partial_bytes(host.archive, besides=earlier) > 1_000_000,
        180,
        "erin's stream",
        host.log,
    )
    killed = host.kill_worker()
    assert len(killed) >= 2  # the worker and the flow run's process
    assert client.read_flow_run(run.id).state.type is StateType.RUNNING  # Prefect alone: stuck

    crashed = wait_for(
        lambda: (r := client.read_flow_run(run.id)).state.type is StateType.CRASHED and r,
        zombie_after + 120,
        "the zombie run marked Crashed",
    )
    assert "No heartbeat for 45 seconds" in (crashed.state.message or ""), crashed.state.message

    def alert(text: str) -> dict[str, object] | None:
        return next((m for m in webhook.received if text in str(m.get("body"))), None)

    # The zombie rule marks the run Crashed; the failed-night alert reports it, with the reason.
    zombie = wait_for(lambda: alert("ended Crashed: No heartbeat"), 60, "the crashed-run alert")
    assert (
        zombie["subject"]
        == "zfs-offsite: zfs-offsite-backup/nightly-hostb on hostb: a run ended Crashed"
    )
    assert str(zombie["body"]).startswith(
        f"Flow run {crashed.name} of zfs-offsite-backup/nightly-hostb (host hostb) ended Crashed: "
        "No heartbeat for 45 seconds"
    ), zombie
    assert str(zombie["body"]).endswith(f"Flow run: prefect.flow-run.{run.id}"), zombie
    # The missed-night alert (1 minute here, from the install) names the deployment too.
    missing = wait_for(lambda: alert("No flow run of"), 120, "the missed-night alert")
    assert str(missing["body"]).startswith(
        "No flow run of zfs-offsite-backup/nightly-hostb (host hostb) reached Completed in the "
        "1 minute after the last completed one"
    ), missing
    print("alerts received:", *webhook.received, sep="\n")
