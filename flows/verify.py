"""Verify the archive: new files and a rotating share of the rest read back, every chain checked."""

from __future__ import annotations

from contextlib import closing
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.futures import PrefectFuture

from flows.aws_block import read_credentials_block
from flows.failures import error_of
from flows.fanout import bounded_task_runner, submit_bounded
from flows.interrupts import stops_streams_when_interrupted
from flows.members import checked_members, only_known
from flows.naming import dated_run_name, label_run
from tasks.verify import verify
from zfs_offsite.archive.identity import require_root
from zfs_offsite.archive.index import archived_members, linked_members
from zfs_offsite.archive.verify_rotation import (
    load_verify_record,
    record_note,
)
from zfs_offsite.connect import open_store
from zfs_offsite.errors import MembersFailed
from zfs_offsite.jobs.verify import FAILING, MemberVerification, RecordWriter
from zfs_offsite.report.run_report import (
    artifact_key,
    verification_rows,
    verification_summary,
    verify_totals,
)
from zfs_offsite.settings import Settings, load_settings


@flow(
    name="zfs-offsite-verify",
    flow_run_name=dated_run_name("verify"),
    task_runner=bounded_task_runner(),
)
@stops_streams_when_interrupted
def verify_flow(
    members: list[str] = [],  # noqa: B006 (shown in the form; never mutated)
    mark: bool = True,
    all_files: bool = False,
) -> list[MemberVerification]:
    """Read back new files and this run's share of older ones; fail the run if any is unsound.

    Args:
        members: Member directories to verify; empty: all.
        mark: Mark corrupt files so no backup builds on them.
        all_files: Read every stored file in full, not just the new ones and this run's share.
    """
    label_run({"members": members})
    checked_members(members)  # bad input first, before the store is even read
    settings = load_settings()
    read_credentials_block(settings)
    with closing(open_store(settings.target)) as store:
        require_root(store)  # a missing root (unmounted disk) is a failure, never "0 files ok"
        names = only_known(archived_members(store), members, "member directory")
        linked = {} if members else linked_members(store)
        records = load_verify_record(store)
    futures = submit_bounded(
        names,
        lambda m: verify.submit(
            settings, m, mark, records.members.get(m), all_files, records.problem
        ),
        settings.max_parallel,
    )
    settled = _settle_recording(settings, names, futures, keep=None if members else names)
    settled += [(name, None, why) for name, why in linked.items()]
    # A member that could not be verified at all is in the results with its error.
    results = [
        r if r is not None else MemberVerification(m, error=e or "not verified")
        for m, r, e in settled
    ]
    totals = verify_totals(results)
    cycle = "every file (--all)" if all_files else f"cycle of {settings.verify.cycle_runs} runs"
    if records.problem:
        get_run_logger().warning("%s", record_note(records.problem))
        totals += f"; {record_note(records.problem)}"
    get_run_logger().info("verify, %s: %s", cycle, totals)
    create_table_artifact(
        key=artifact_key("verify", settings.target.parsed.host or "local"),
        table=[verification_summary(r, m, e) for m, r, e in settled],
        description=f"zfs-offsite verify of {settings.target.parsed}, {cycle}: {totals}",
    )
    create_table_artifact(
        key=artifact_key("verify-files", settings.target.parsed.host or "local"),
        table=[row for r in results for row in verification_rows(r)],
    )
    bad = [m for m, r, e in settled if e or (r is not None and r.verdict in FAILING)]
    if bad:
        raise MembersFailed(f"verify found {len(bad)} unsound member(s): {', '.join(bad)}", results)
    return results


def _settle_recording(
    settings: Settings,
    names: list[str],
    futures: list[PrefectFuture[Any]],
    keep: list[str] | None,
) -> list[tuple[str, MemberVerification | None, str | None]]:
    """Wait for each member in turn; the job's `RecordWriter` stores the records as they come.

    `keep` (every member, on a run over all) drops the records of member
    directories that are gone.
    """
    settled: list[tuple[str, MemberVerification | None, str | None]] = []
    records = RecordWriter(settings, keep)
    for name, future in zip(names, futures, strict=True):
        future.wait()
        error = error_of(future.state)
        result: MemberVerification | None = future.result() if error is None else None
        settled.append((name, result, error))
        records.add(result)
    records.finish()
    return settled
