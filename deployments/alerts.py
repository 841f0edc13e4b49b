"""Create the "no Completed backup for 26 hours" automation on the Prefect server.

Usage (from the repository root, with PREFECT_API_URL set):
    python deployments/alerts.py --deployment zfs-offsite-backup/nightly-<host> \
        --block slack-webhook/lab-alerts --hours 26

It is a proactive trigger: it fires when the expected event (a flow run of the
deployment reaching Completed) has *not* happened within the window, which
catches failed nights, cancelled nights and a dead worker alike. The action
sends to an existing notification block (Slack, e-mail, webhook...). Running it
again replaces the automation of the same name.
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from prefect.client.orchestration import get_client
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

from deployments import naming


def alert_automation(
    deployment_name: str, deployment_id: str, block_id: str, hours: float
) -> AutomationCore:
    """The automation, as data: expect a Completed run of the deployment every `hours`."""
    return AutomationCore(
        name=f"zfs-offsite: no completed {deployment_name} in {hours:g}h",
        description="A nightly off-site backup has not completed; check the last flow runs.",
        trigger=EventTrigger(
            posture=Posture.Proactive,
            expect={"prefect.flow-run.Completed"},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={
                "prefect.resource.id": f"prefect.deployment.{deployment_id}",
                "prefect.resource.role": "deployment",
            },
            threshold=1,
            within=timedelta(hours=hours),
        ),
        actions=[
            SendNotification(
                block_document_id=block_id,
                subject=f"zfs-offsite: {deployment_name} has not completed in {hours:g} hours",
                body=(
                    "No flow run of {{ deployment.name }} reached Completed in the last "
                    f"{hours:g} hours. Open the flow-run history in the Prefect UI."
                ),
            )
        ],
    )


def install(deployment: str, block: str, hours: float) -> str:
    """Create (or replace) the automation; returns its id."""
    block_type, _, block_name = block.partition("/")
    if not block_name:
        raise SystemExit(f"--block {block!r}: use <block-type-slug>/<block-name>")
    with get_client(sync_client=True) as client:
        found = client.read_deployment_by_name(deployment)
        document = client.read_block_document_by_name(block_name, block_type)
        automation = alert_automation(deployment, str(found.id), str(document.id), hours)
        for old in client.read_automations_by_name(automation.name):
            client.delete_automation(old.id)
        return str(client.create_automation(automation))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    nightly = naming.deployment_name("nightly", naming.host())
    parser.add_argument("--deployment", default=f"zfs-offsite-backup/{nightly}")
    parser.add_argument("--block", required=True, help="notification block: <type-slug>/<name>")
    parser.add_argument("--hours", type=float, default=26.0)
    args = parser.parse_args()
    print(install(args.deployment, args.block, args.hours))


if __name__ == "__main__":
    main()
