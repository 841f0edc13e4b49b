"""`zfs-offsite drill`: prove a restore works by receiving into a scratch dataset."""

from __future__ import annotations

from cli import flow_run, output, startup


def drill(config: startup.ConfigOption = None, member: startup.MembersOption = None) -> None:
    """Restore drill: receive the newest archived snapshot into scratch, check GUID, destroy."""
    startup.load(config)
    flow_run.prepare_prefect()
    from flows.drill import drill_flow

    outcome = flow_run.run_flow(drill_flow, members=member or [])
    if outcome.failed:
        flow_run.fail_run(
            "drill", outcome, check="`zfs-offsite status` shows each member's last drill"
        )
    if not output.verbosity.quiet:
        for name, when in outcome.result.items():
            output.out().print(f"{name}: restorable, proven {when}", highlight=False)
