"""Alerts where they run: deployments/alerts.py against a real server, real workers, a webhook.

The steps share the operations harness (conftest.py) and run in this order: a
completed run right after the install sends nothing (past every window the
test configures), a failed night is reported within a minute naming the failed
member, a deployment that never completes is reported once its window passed,
and a second install leaves one set of automations (and nobody else's gone).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta
from uuid import UUID

import pytest
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.events import Event
from prefect.events.actions import DoNothing
from prefect.events.clients import get_events_client
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.settings import PREFECT_API_URL, temporary_settings

from deployments.alert_rules import deployment_resource
from tests.support.operations import (
    HEARTBEAT_SECONDS,
    SimulatedHost,
    Webhook,
    install_alerts,
    save_webhook_block,
    wait_for,
)
from tests.support.zfsdata import snapshot

pytestmark = pytest.mark.integration

ZOMBIE_SECONDS = HEARTBEAT_SECONDS + 15
# The first step checks at the later of install + MISSED_SECONDS + 30 (the install's window
# passed, with 30 s for an alert to arrive) and the late heartbeat + ZOMBIE_SECONDS + 15. Its
# run completes GAP_SECONDS (and a few s) after the install, so the window that Completed
# restarts ends at least GAP_SECONDS - 30 = 10 s after the check: a shorter gap would bring
# the check past that end, when an alert is due; longer windows only make the test wait.
MISSED_SECONDS = 80  # the missed-night window of the first steps
GAP_SECONDS = 40  # between the install and the completed run


@pytest.fixture(scope="module")
def client(server: dict[str, str]) -> Iterator[SyncPrefectClient]:
    with (
        temporary_settings(updates={PREFECT_API_URL: server["PREFECT_API_URL"]}),
        get_client(sync_client=True) as api,
    ):
        yield api


@pytest.fixture(scope="module")
def block(hosts: dict[str, SimulatedHost], webhook: Webhook) -> str:
    return save_webhook_block(hosts["hosta"], webhook, "alr-alerts")


def finished(client: SyncPrefectClient, run_id: UUID) -> FlowRun | None:
    run = client.read_flow_run(run_id)
    return run if run.state is not None and run.state.is_final() else None


async def late_heartbeat(run: FlowRun) -> None:
    """A heartbeat of `run` that reaches the server after its final state, as a raced one does."""
    assert run.deployment_id is not None
    async with get_events_client() as events:
        await events.emit(
            Event(
                event="prefect.flow-run.heartbeat",
                resource={"prefect.resource.id": f"prefect.flow-run.{run.id}"},
                related=[deployment_resource(str(run.deployment_id))],
            )
        )


def about(webhook: Webhook, deployment: str) -> list[dict[str, object]]:
    """The alerts received that name `deployment`."""
    return [m for m in webhook.received if deployment in str(m.get("subject"))]


def test_a_completed_run_right_after_install_sends_nothing(
    hosts: dict[str, SimulatedHost], client: SyncPrefectClient, webhook: Webhook, block: str
) -> None:
    host = hosts["hosta"]
    installed = time.monotonic()
    install_alerts(host, block, MISSED_SECONDS / 3600, ZOMBIE_SECONDS)
    time.sleep(GAP_SECONDS)
    deployment = client.read_deployment_by_name(host.nightly)
    run = client.create_flow_run_from_deployment(deployment.id)
    done = wait_for(lambda: finished(client, run.id), 180, "the nightly run", host.log)
    assert done.state is not None and done.state.type is StateType.COMPLETED, done.state
    # A heartbeat that races the run's end (it arrives after Completed) opens a zombie window.
    asyncio.run(late_heartbeat(done))
    # Past the install's missed-night window and that zombie window; a missed-night alert
    # is due only MISSED_SECONDS after this completion.
    wait_until = installed + MISSED_SECONDS + 30
    assert wait_until - time.monotonic() > 0, "the run took longer than the test's windows"
    time.sleep(max(wait_until - time.monotonic(), ZOMBIE_SECONDS + 15))
    assert about(webhook, host.nightly) == []
    finals = client.read_flow_run(run.id)
    assert finals.state is not None and finals.state.type is StateType.COMPLETED, finals.state


def test_a_failed_night_is_reported_within_a_minute(
    hosts: dict[str, SimulatedHost], client: SyncPrefectClient, webhook: Webhook
) -> None:
    host = hosts["hosta"]
    for member in ("alice", "bob", "carol"):
        data = host.pool.mountpoint / f"elabfs-{member}"
        (data / "wednesday.txt").write_text(f"{member} changed on wednesday\n" * 500)
        snapshot(f"{host.pool.name}/elabfs-{member}", "auto-20190808.0200-1w")
    bob_dir = host.archive / "bob"
    mode = bob_dir.stat().st_mode & 0o777
    bob_dir.chmod(0o555)  # the backup server refuses bob's new file: this night fails
    try:
        deployment = client.read_deployment_by_name(host.nightly)
        run = client.create_flow_run_from_deployment(deployment.id)
        failed = wait_for(lambda: finished(client, run.id), 180, "the failing night", host.log)
    finally:
        bob_dir.chmod(mode)
    assert failed.state is not None and failed.state.type is StateType.FAILED, failed.state
    assert failed.state.timestamp is not None
    ended = failed.state.timestamp.timestamp()

    def alert() -> dict[str, object] | None:
        return next((m for m in about(webhook, host.nightly) if "ended Failed" in str(m)), None)

    got = wait_for(alert, max(ended + 60 - time.time(), 0.1), "the failed-night alert")
    assert got["subject"] == f"zfs-offsite: {host.nightly} on hosta: a run ended Failed", got
    body = str(got["body"])
    assert body.startswith(f"Flow run {failed.name} of {host.nightly} (host hosta) ended Failed:")
    assert "failed for 1 member(s): bob" in body, body
    assert body.endswith(f"Flow run: prefect.flow-run.{run.id}"), body


def test_a_deployment_that_never_completes_is_reported(
    hosts: dict[str, SimulatedHost], client: SyncPrefectClient, webhook: Webhook, block: str
) -> None:
    host = hosts["hostb"]  # no run of hostb's nightly ever started in this module
    window = 60
    installed = time.monotonic()
    install_alerts(host, block, window / 3600, ZOMBIE_SECONDS)
    got = wait_for(lambda: about(webhook, host.nightly), window + 90, "the missed-night alert")
    assert time.monotonic() - installed >= window - 1  # not before its window passed
    (alert,) = got
    assert alert["subject"] == f"zfs-offsite: {host.nightly} on hostb has not completed in 1 minute"
    assert str(alert["body"]).startswith(
        f"No flow run of {host.nightly} (host hostb) reached Completed in the 1 minute after "
        "the last completed one (or after the alerts were installed)"
    ), alert


def test_a_second_install_leaves_one_set(
    hosts: dict[str, SimulatedHost], client: SyncPrefectClient, block: str
) -> None:
    host = hosts["hosta"]
    deployment = client.read_deployment_by_name(host.nightly)
    watched = deployment_resource(str(deployment.id))

    def automation(name: str) -> UUID:
        trigger = EventTrigger(
            posture=Posture.Reactive,
            expect={"prefect.flow-run.Failed"},
            match_related=watched,
            within=timedelta(0),
        )
        return client.create_automation(
            AutomationCore(name=name, trigger=trigger, actions=[DoNothing()])
        )

    # One made by an older alerts.py (its name carried its window), one made by someone else.
    legacy = automation(f"zfs-offsite: no completed {host.nightly} in 6 minutes")
    theirs = automation(f"page the on-call for {host.nightly}")
    first = install_alerts(host, block, 26, 600)
    second = install_alerts(host, block, 12, 300)
    ours = sorted(
        (a.name, str(a.id))
        for a in client.read_automations()
        if a.name.startswith("zfs-offsite: ") and str(deployment.id) in str(a.trigger)
    )
    assert sorted(i for _, i in ours) == sorted(second), ours
    assert [n for n, _ in ours] == [
        f"zfs-offsite: {host.nightly} failed",
        f"zfs-offsite: {host.nightly} missed a night",
        f"zfs-offsite: {host.nightly} unresponsive run",
    ]
    assert not set(first) & set(second)
    ids = {str(a.id) for a in client.read_automations()}
    assert str(legacy) not in ids
    assert str(theirs) in ids
