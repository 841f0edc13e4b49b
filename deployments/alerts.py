"""Create the alerting automations of one deployment on the Prefect server.

Usage (from the repository root, with PREFECT_API_URL set):
    python deployments/alerts.py --deployment zfs-offsite-backup/nightly-<host> \
        --block slack-webhook/lab-alerts --hours 26 --zombie-seconds 600

Two automations, both sending to an existing notification block (Slack,
e-mail, webhook...):

- **missing run**: a proactive trigger that fires when no flow run of the
  deployment reached Completed within `--hours`; it catches failed nights,
  cancelled nights and a dead worker alike.
- **zombie run**: a run of the deployment stopped sending its heartbeat
  (`prefect.flow-run.heartbeat`, every PREFECT_FLOWS_HEARTBEAT_FREQUENCY
  seconds, 180 by default) without reaching a final state for
  `--zombie-seconds`: its worker or host died mid-run. The run is marked
  Crashed (Prefect would leave it Running forever) and the block is told.

A proactive trigger fires on an event that did *not* happen, so its message
has no event to take the deployment's name from (`{{ deployment.name }}`
renders empty): the name is written into the text when the automation is
made. Running the script again replaces both automations.
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState, SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

from deployments import naming

FINAL_EVENTS = {
    "prefect.flow-run.Completed",
    "prefect.flow-run.Failed",
    "prefect.flow-run.Cancelled",
    "prefect.flow-run.Crashed",
}
MIN_ZOMBIE_SECONDS = 30  # Prefect's shortest heartbeat interval


def span(window: timedelta) -> str:
    """`26 hours`, `10 minutes`, `45 seconds`: a window as a person writes it."""
    seconds = window.total_seconds()
    for unit, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        if (seconds >= size and seconds % size == 0) or unit == "second":
            count = seconds / size
            return f"{count:g} {unit}{'' if count == 1 else 's'}"
    raise AssertionError("unreachable")


def _of_deployment(deployment_id: str) -> dict[str, str]:
    return {
        "prefect.resource.id": f"prefect.deployment.{deployment_id}",
        "prefect.resource.role": "deployment",
    }


def alert_automation(
    deployment_name: str, deployment_id: str, block_id: str, hours: float
) -> AutomationCore:
    """The missing-run automation, as data: expect a Completed run every `hours`."""
    within = span(timedelta(hours=hours))
    return AutomationCore(
        name=f"zfs-offsite: no completed {deployment_name} in {within}",
        description="A nightly off-site backup has not completed; check the last flow runs.",
        trigger=EventTrigger(
            posture=Posture.Proactive,
            expect={"prefect.flow-run.Completed"},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related=_of_deployment(deployment_id),
            threshold=1,
            within=timedelta(hours=hours),
        ),
        actions=[
            SendNotification(
                block_document_id=block_id,
                subject=f"zfs-offsite: {deployment_name} has not completed in {within}",
                body=(
                    f"No flow run of {deployment_name} reached Completed in the last {within}. "
                    "Open the flow-run history in the Prefect UI."
                ),
            )
        ],
    )


def zombie_automation(
    deployment_name: str, deployment_id: str, block_id: str, seconds: float
) -> AutomationCore:
    """The zombie automation, as data: a run's heartbeats stopped before a final state."""
    if seconds < MIN_ZOMBIE_SECONDS:
        raise ValueError(
            f"--zombie-seconds {seconds:g}: at least {MIN_ZOMBIE_SECONDS} "
            "(more than the flow runs' heartbeat interval, PREFECT_FLOWS_HEARTBEAT_FREQUENCY)"
        )
    within = span(timedelta(seconds=seconds))
    return AutomationCore(
        name=f"zfs-offsite: unresponsive run of {deployment_name}",
        description="A run stopped sending heartbeats: its worker or host died mid-run.",
        trigger=EventTrigger(
            posture=Posture.Proactive,
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *FINAL_EVENTS},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related=_of_deployment(deployment_id),
            for_each={"prefect.resource.id"},
            threshold=1,
            within=timedelta(seconds=seconds),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"No heartbeat for {within}: the worker or its host died mid-run.",
            ),
            SendNotification(
                block_document_id=block_id,
                subject=f"zfs-offsite: a run of {deployment_name} stopped responding",
                body=(
                    f"A flow run of {deployment_name} sent no heartbeat for {within}: "
                    "its worker or host died mid-run. It is marked Crashed; restart the "
                    "worker, then Retry the run in the Prefect UI. "
                    "Flow run: {{ labels.prefect.resource.id }}"
                ),
            ),
        ],
    )


def install(deployment: str, block: str, hours: float, zombie_seconds: float = 600) -> list[str]:
    """Create (or replace) both automations of `deployment`; returns their ids."""
    block_type, _, block_name = block.partition("/")
    if not block_name:
        raise SystemExit(f"--block {block!r}: use <block-type-slug>/<block-name>")
    with get_client(sync_client=True) as client:
        found = client.read_deployment_by_name(deployment)
        document = client.read_block_document_by_name(block_name, block_type)
        wanted = [
            alert_automation(deployment, str(found.id), str(document.id), hours),
            zombie_automation(deployment, str(found.id), str(document.id), zombie_seconds),
        ]
        ids = []
        for automation in wanted:
            for old in client.read_automations_by_name(automation.name):
                client.delete_automation(old.id)
            ids.append(str(client.create_automation(automation)))
        return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    nightly = naming.deployment_name("nightly", naming.host())
    parser.add_argument("--deployment", default=f"zfs-offsite-backup/{nightly}")
    parser.add_argument("--block", required=True, help="notification block: <type-slug>/<name>")
    parser.add_argument("--hours", type=float, default=26.0, help="missing-run window")
    parser.add_argument(
        "--zombie-seconds",
        type=float,
        default=600.0,
        help="silence after which a running flow run is a zombie (> heartbeat interval)",
    )
    args = parser.parse_args()
    try:
        ids = install(args.deployment, args.block, args.hours, args.zombie_seconds)
    except ValueError as exc:
        parser.error(str(exc))
    print("\n".join(ids))


if __name__ == "__main__":
    main()
