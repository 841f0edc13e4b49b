"""The restore drill: receive members' newest archived snapshots into scratch and prove them."""

from __future__ import annotations

from contextlib import closing

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.aws_block import read_credentials_block
from flows.failures import error_of
from flows.interrupts import stops_streams_when_interrupted
from flows.members import only_known
from flows.naming import dated_run_name, label_run
from tasks.discover import discover
from tasks.drill import drill
from zfs_offsite.connect import host_label, open_store
from zfs_offsite.errors import MembersFailed
from zfs_offsite.jobs.drill import choose_members, read_records
from zfs_offsite.report.run_report import artifact_key, drill_row
from zfs_offsite.settings import load_settings


@flow(name="zfs-offsite-drill", flow_run_name=dated_run_name("drill"))
@stops_streams_when_interrupted
def drill_flow(
    members: list[str] = [],  # noqa: B006 (shown in the form; never mutated)
) -> dict[str, str]:
    """Restore the newest archived snapshot of the members whose turn it is, and prove it.

    Args:
        members: Members to drill now; empty: whose turn it is.
    """
    label_run({"members": members})
    logger = get_run_logger()
    settings = load_settings()
    read_credentials_block(settings)
    host = host_label(settings)
    # A dataset that cannot be a member has no archive to drill (backup reports it).
    usable = {m.name: m for m in discover(settings) if m.error is None}
    with closing(open_store(settings.target)) as store:
        records = read_records(store)
    names = only_known(sorted(usable), members, "member")
    chosen = names if members else choose_members(names, records, settings.drill.cycle_runs)
    logger.info("drilling %s (cycle of %d runs)", ", ".join(chosen), settings.drill.cycle_runs)
    errors: dict[str, str] = {}
    for name in chosen:  # one at a time: each drill is a full receive on the NAS
        state = drill(settings, usable[name], return_state=True)
        error = error_of(state)
        if error is None:
            records[name] = state.result()
        else:
            errors[name] = error
    create_table_artifact(
        key=artifact_key("drill", host),
        table=[drill_row(n, records.get(n), errors.get(n), n in chosen) for n in names],
        description=f"restore drill of {host} from {settings.target.parsed}",
    )
    never = [n for n in names if n not in records]
    create_markdown_artifact(
        key=artifact_key("drill-summary", host),
        markdown=f"# Restore drill of {host}\n\nDrilled: {', '.join(chosen) or 'none'}\n\n"
        f"Failed: {', '.join(errors) or 'none'}\n\nNever proven: {', '.join(never) or 'none'}\n",
    )
    if errors:
        raise MembersFailed(
            "restore drill failed for " + "; ".join(f"{n}: {e}" for n, e in errors.items())
        )
    return {n: records[n].when for n in chosen}
