"""Verify the archive: every stored file read back, every chain checked."""

from __future__ import annotations

from contextlib import closing

from prefect import flow
from prefect.artifacts import create_table_artifact

from flows.common import (
    bounded_task_runner,
    dated_run_name,
    label_run,
    only_known,
    settle,
    stops_streams_when_interrupted,
    submit_bounded,
)
from tasks.verify import verify
from zfs_offsite.archive.index import archived_members, linked_members
from zfs_offsite.connect import open_store
from zfs_offsite.errors import MembersFailed
from zfs_offsite.jobs.report import artifact_key, verification_rows, verification_summary
from zfs_offsite.jobs.verify import FAILING, MemberVerification
from zfs_offsite.settings import load_settings


@flow(
    name="zfs-offsite-verify",
    flow_run_name=dated_run_name("verify"),
    task_runner=bounded_task_runner(),
)
@stops_streams_when_interrupted
def verify_flow(
    members: list[str] = [],  # noqa: B006 (shown in the form; never mutated)
    mark: bool = True,
) -> list[MemberVerification]:
    """Read back every stored file of each member; fail the run if any is corrupt or unchained.

    Args:
        members: Member directories to verify; empty: all.
        mark: Mark corrupt files so no backup builds on them.
    """
    label_run({"members": members})
    settings = load_settings()
    with closing(open_store(settings.target)) as store:
        names = only_known(archived_members(store), members, "member directory")
        linked = {} if members else linked_members(store)
    futures = submit_bounded(
        names, lambda m: verify.submit(settings, m, mark), settings.max_parallel
    )
    settled = settle(names, futures) + [(name, None, why) for name, why in linked.items()]
    create_table_artifact(
        key=artifact_key("verify", settings.target.parsed.host or "local"),
        table=[verification_summary(r, m, e) for m, r, e in settled],
        description=f"zfs-offsite verify of {settings.target.parsed}",
    )
    create_table_artifact(
        key=artifact_key("verify-files", settings.target.parsed.host or "local"),
        table=[row for _, r, _ in settled if r for row in verification_rows(r)],
    )
    bad = [m for m, r, e in settled if e or (r is not None and r.verdict in FAILING)]
    if bad:
        raise MembersFailed(
            f"verify found {len(bad)} unsound member(s): {', '.join(bad)}",
            [r for _, r, _ in settled if r is not None],
        )
    return [r for _, r, _ in settled]
