"""Install (or replace) the alerting automations of one deployment on the Prefect server.

Usage (from the repository root, with PREFECT_API_URL set):
    python deployments/alerts.py --deployment zfs-offsite-backup/nightly-<host> \
        --block slack-webhook/lab-alerts --hours 26 --zombie-seconds 600

What the three automations do, and why, is in deployments/alert_rules.py. This
script deletes every automation an earlier run made for the deployment
(whatever its parameters), creates the new ones, and emits one event that
opens the first missed-night window: from then on a deployment that never
completes is reported too.
"""

from __future__ import annotations

import argparse
import asyncio

from prefect.client.orchestration import get_client
from prefect.events import Event
from prefect.events.clients import get_events_client
from prefect.exceptions import ObjectNotFound

from deployments import alert_rules, naming


def host_of(work_pool_name: str | None, deployment: str) -> str:
    """The ZFS host a deployment runs on: its work pool `zfs-offsite-<host>`, else its name."""
    prefix = naming.work_pool("")
    if work_pool_name and work_pool_name.startswith(prefix) and len(work_pool_name) > len(prefix):
        return work_pool_name[len(prefix) :]
    return deployment


async def _announce(deployment_id: str) -> None:
    """Emit the event that opens the missed-night window now."""
    async with get_events_client() as events:
        await events.emit(
            Event(
                event=alert_rules.INSTALLED_EVENT,
                resource={"prefect.resource.id": alert_rules.installed_resource(deployment_id)},
                related=[alert_rules.deployment_resource(deployment_id)],
            )
        )


def install(deployment: str, block: str, hours: float, zombie_seconds: float = 600) -> list[str]:
    """Replace the deployment's automations by the three of alert_rules; returns their ids."""
    block_type, _, block_name = block.partition("/")
    if not block_name:
        raise ValueError(f"--block {block!r}: use <block-type-slug>/<block-name>")
    if hours <= 0:
        raise ValueError(f"--hours {hours:g}: use a positive window, e.g. 26")
    with get_client(sync_client=True) as client:
        try:
            found = client.read_deployment_by_name(deployment)
        except ObjectNotFound:
            raise ValueError(
                f"--deployment {deployment!r}: no such deployment on the server; "
                "run deployments/deploy.sh first, or name one `prefect deployment ls` lists"
            ) from None
        try:
            document = client.read_block_document_by_name(block_name, block_type)
        except ObjectNotFound:
            raise ValueError(
                f"--block {block!r}: no such notification block; create it first "
                "(see deployments/README.md, Alerts)"
            ) from None
        ids = (str(found.id), str(document.id))
        host = host_of(found.work_pool_name, deployment)
        wanted = [
            alert_rules.failed_night(deployment, ids[0], host, ids[1]),
            alert_rules.missed_night(deployment, ids[0], host, ids[1], hours),
            alert_rules.unresponsive_run(deployment, ids[0], zombie_seconds),
        ]
        for old in client.read_automations():
            if alert_rules.made_by_us(old, ids[0]):
                client.delete_automation(old.id)
        made = [str(client.create_automation(automation)) for automation in wanted]
    asyncio.run(_announce(ids[0]))
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    nightly = naming.deployment_name("nightly", naming.host())
    parser.add_argument("--deployment", default=f"zfs-offsite-backup/{nightly}")
    parser.add_argument("--block", required=True, help="notification block: <type-slug>/<name>")
    parser.add_argument(
        "--hours", type=float, default=26.0, help="missed night: no Completed run for this long"
    )
    parser.add_argument(
        "--zombie-seconds",
        type=float,
        default=600.0,
        help="silence after which a running flow run is marked Crashed (> heartbeat interval)",
    )
    args = parser.parse_args()
    try:
        ids = install(args.deployment, args.block, args.hours, args.zombie_seconds)
    except ValueError as exc:
        parser.error(str(exc))
    print("\n".join(ids))


if __name__ == "__main__":
    main()
