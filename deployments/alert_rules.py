"""The alerting automations of one deployment, as data (no server is contacted here).

Three automations per deployment, every one named `zfs-offsite: <deployment> ...`
and matching that deployment's id, which is how a later install recognises (and
replaces) what an earlier one made, whatever its parameters were:

- **failed night** (reactive): a flow run of the deployment entered Failed,
  TimedOut or Crashed. It fires on the state event itself, within seconds, and
  its message is built from that event: the run's name and its state message,
  which for a backup names the failed members (`MembersFailed`).
- **missed night** (proactive): no run of the deployment reached Completed
  within the window after the last Completed run (or after the install). The
  window restarts at every Completed run, so a single missed night is caught;
  fixed windows tiled from the install would contain the night before or
  after and never fire. It fires on something that did *not* happen, so it
  has no event to take names from: they are written into the text here.
- **unresponsive run** (Prefect's zombie rule): a running flow run's
  heartbeats stopped without a final state. Its only action is to mark the run
  Crashed, *without* force: the server refuses Crashed for a run that already
  finished, so a late or raced heartbeat of a run that completed changes
  nothing and sends nothing. A run it does mark Crashed is reported by the
  failed-night automation, with the reason in the state message.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState, SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

PREFIX = "zfs-offsite: "
INSTALLED_EVENT = "zfs-offsite.alerts.installed"
FINAL_EVENTS = {
    "prefect.flow-run.Completed",
    "prefect.flow-run.Failed",
    "prefect.flow-run.TimedOut",  # a Failed state named TimedOut
    "prefect.flow-run.Cancelled",
    "prefect.flow-run.Crashed",
}
BAD_ENDINGS = {"prefect.flow-run.Failed", "prefect.flow-run.TimedOut", "prefect.flow-run.Crashed"}
MIN_ZOMBIE_SECONDS = 30  # Prefect's shortest heartbeat interval


def span(window: timedelta) -> str:
    """`26 hours`, `10 minutes`, `45 seconds`: a window as a person writes it."""
    seconds = window.total_seconds()
    for unit, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        if (seconds >= size and seconds % size == 0) or unit == "second":
            count = seconds / size
            return f"{count:g} {unit}{'' if count == 1 else 's'}"
    raise AssertionError("unreachable")


def deployment_resource(deployment_id: str) -> dict[str, str]:
    """The related resource every event of the deployment's runs carries."""
    return {
        "prefect.resource.id": f"prefect.deployment.{deployment_id}",
        "prefect.resource.role": "deployment",
    }


def installed_resource(deployment_id: str) -> str:
    """The resource of the event an install emits: it opens the first missed-night window."""
    return f"zfs-offsite.alerts.{deployment_id}"


def made_by_us(automation: Any, deployment_id: str) -> bool:
    """Whether `automation` is one this script made for that deployment (any version of it).

    Its name starts with our prefix and its trigger watches the deployment's id:
    nobody else's automation is deleted on a re-install.
    """
    trigger = getattr(automation, "trigger", None)
    watched = str(getattr(trigger, "match_related", ""))
    return automation.name.startswith(PREFIX) and f"prefect.deployment.{deployment_id}" in watched


def failed_night(deployment: str, deployment_id: str, host: str, block_id: str) -> AutomationCore:
    """Fires on every Failed, TimedOut or Crashed run of the deployment, naming what failed."""
    state = "{{ event.resource['prefect.state-name'] }}"
    return AutomationCore(
        name=f"{PREFIX}{deployment} failed",
        description="A run of the deployment ended Failed, TimedOut or Crashed.",
        trigger=EventTrigger(
            posture=Posture.Reactive,
            expect=BAD_ENDINGS,
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related=deployment_resource(deployment_id),
            threshold=1,
            within=timedelta(0),
        ),
        actions=[
            SendNotification(
                block_document_id=block_id,
                subject=f"zfs-offsite: {deployment} on {host}: a run ended {state}",
                body=(
                    f"Flow run {{{{ event.resource['prefect.resource.name'] }}}} of {deployment} "
                    f"(host {host}) ended {state}: "
                    "{{ event.resource['prefect.state-message'] }} "
                    "Fix the cause, then Retry the run in the Prefect UI "
                    "(members that succeeded are not sent again). "
                    "Flow run: {{ event.resource['prefect.resource.id'] }}"
                ),
            )
        ],
    )


def missed_night(
    deployment: str, deployment_id: str, host: str, block_id: str, hours: float
) -> AutomationCore:
    """Fires when no run of the deployment completed within `hours` after the last one."""
    within = span(timedelta(hours=hours))
    return AutomationCore(
        name=f"{PREFIX}{deployment} missed a night",
        description="No run of the deployment completed within the window after the last one.",
        trigger=EventTrigger(
            posture=Posture.Proactive,
            after={"prefect.flow-run.Completed", INSTALLED_EVENT},
            expect={"prefect.flow-run.Completed"},
            match={
                "prefect.resource.id": ["prefect.flow-run.*", installed_resource(deployment_id)]
            },
            match_related=deployment_resource(deployment_id),
            threshold=1,
            within=timedelta(hours=hours),
        ),
        actions=[
            SendNotification(
                block_document_id=block_id,
                subject=f"zfs-offsite: {deployment} on {host} has not completed in {within}",
                body=(
                    f"No flow run of {deployment} (host {host}) reached Completed in the "
                    f"{within} after the last completed one (or after the alerts were "
                    "installed): a night failed, was cancelled, or never started (is the "
                    "worker running?). Open the flow-run history in the Prefect UI."
                ),
            )
        ],
    )


def unresponsive_run(deployment: str, deployment_id: str, seconds: float) -> AutomationCore:
    """Marks a run Crashed when its heartbeats stopped before a final state."""
    if seconds < MIN_ZOMBIE_SECONDS:
        raise ValueError(
            f"--zombie-seconds {seconds:g}: use at least {MIN_ZOMBIE_SECONDS} "
            "(more than the flow runs' heartbeat interval, PREFECT_FLOWS_HEARTBEAT_FREQUENCY)"
        )
    within = span(timedelta(seconds=seconds))
    return AutomationCore(
        name=f"{PREFIX}{deployment} unresponsive run",
        description="A run stopped sending heartbeats: its worker or host died mid-run.",
        trigger=EventTrigger(
            posture=Posture.Proactive,
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *FINAL_EVENTS},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related=deployment_resource(deployment_id),
            for_each={"prefect.resource.id"},
            threshold=1,
            within=timedelta(seconds=seconds),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                force=False,  # a finished run stays as it finished
                message=f"No heartbeat for {within}: the worker or its host died mid-run.",
            ),
        ],
    )
