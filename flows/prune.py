"""Prune the archive by the retention policy, never breaking a chain a kept point needs."""

from __future__ import annotations

from contextlib import closing

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows.aws_block import read_credentials_block
from flows.fanout import settle, submit_bounded
from flows.interrupts import stops_streams_when_interrupted
from flows.members import only_known
from flows.naming import dated_run_name, label_run
from tasks.prune import prune
from zfs_offsite.archive.index import archived_members, linked_members
from zfs_offsite.connect import open_store
from zfs_offsite.errors import MembersFailed
from zfs_offsite.plan.retention import PrunePlan
from zfs_offsite.report.run_report import artifact_key, prune_file_rows, prune_summary
from zfs_offsite.settings import load_settings


@flow(name="zfs-offsite-prune", flow_run_name=dated_run_name("prune"))
@stops_streams_when_interrupted
def prune_flow(
    members: list[str] = [],  # noqa: B006 (shown in the form; never mutated)
    dry_run: bool = False,
) -> list[PrunePlan]:
    """Apply the retention policy to each member directory; report kept and deleted files.

    Args:
        members: Member directories to prune; empty: all.
        dry_run: Report what would be deleted; delete nothing.
    """
    label_run({"members": members, "dry_run": dry_run})
    logger = get_run_logger()
    settings = load_settings()
    read_credentials_block(settings)
    if settings.retention.rules is None:
        logger.warning(
            "retention.policy is not set: no backup is deleted (stale partial uploads are)"
        )
    with closing(open_store(settings.target)) as store:
        names = only_known(archived_members(store), members, "member directory")
        linked = {} if members else linked_members(store)
    # One member at a time: deletions are quick, and the server sees one client.
    futures = submit_bounded(names, lambda m: prune.submit(settings, m, dry_run), 1)
    settled = settle(names, futures) + [(name, None, why) for name, why in linked.items()]
    where = settings.target.parsed.host or "local"
    create_table_artifact(
        key=artifact_key("prune", where),
        table=[prune_summary(p, m, e) for m, p, e in settled],
        description=f"prune of {settings.target.parsed} by "
        f"{settings.retention.policy or 'no policy'}" + (" (dry run)" if dry_run else ""),
    )
    create_table_artifact(
        key=artifact_key("prune-files", where),
        table=[row for _, p, _ in settled if p for row in prune_file_rows(p, dry_run)],
    )
    failed = [m for m, _, e in settled if e]
    if failed:
        raise MembersFailed(f"prune failed for {', '.join(failed)}")
    return [p for _, p, _ in settled]
