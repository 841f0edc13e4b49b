"""Verify the archive: new files and a rotating share of the rest read back, every chain checked."""

from __future__ import annotations

import time
from contextlib import closing
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.futures import PrefectFuture

from flows.failures import error_of
from flows.fanout import bounded_task_runner, submit_bounded
from flows.interrupts import stops_streams_when_interrupted
from flows.members import checked_members, only_known
from flows.naming import dated_run_name, label_run
from tasks.verify import verify
from zfs_offsite.archive.identity import require_root
from zfs_offsite.archive.index import archived_members, linked_members
from zfs_offsite.archive.verify_rotation import (
    VERIFY_RECORD,
    MemberRecord,
    load_verify_record,
    record_note,
    write_verify_record,
)
from zfs_offsite.connect import open_store
from zfs_offsite.errors import MembersFailed, ZfsOffsiteError
from zfs_offsite.jobs.verify import FAILING, MemberVerification
from zfs_offsite.report.run_report import (
    artifact_key,
    verification_rows,
    verification_summary,
    verify_totals,
)
from zfs_offsite.settings import Settings, load_settings

RECORD_EVERY_SECONDS = 300.0  # a long verify saves its progress this often


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
    """Wait for each member in turn, writing the verify record as results come in.

    The record is written every RECORD_EVERY_SECONDS and once at the end, so a
    stopped run keeps what it proved; `keep` (every member, on a run over
    all) drops the records of member directories that are gone.
    """
    settled: list[tuple[str, MemberVerification | None, str | None]] = []
    pending: dict[str, MemberRecord] = {}
    last_write = time.monotonic()
    for name, future in zip(names, futures, strict=True):
        future.wait()
        error = error_of(future.state)
        result: MemberVerification | None = future.result() if error is None else None
        settled.append((name, result, error))
        if result is not None and result.record is not None:
            pending[name] = result.record
        if pending and time.monotonic() - last_write >= RECORD_EVERY_SECONDS:
            _write_record(settings, pending, None)
            pending, last_write = {}, time.monotonic()
    _write_record(settings, pending, keep)
    return settled


def _write_record(
    settings: Settings, updates: dict[str, MemberRecord], keep: list[str] | None
) -> None:
    """Store members' new records; a failure is a warning (the next run reads more, not less)."""
    if not updates and keep is None:
        return
    try:
        with closing(open_store(settings.target)) as store:
            write_verify_record(store, updates, keep)
    except (OSError, ZfsOffsiteError) as exc:
        get_run_logger().warning(
            "could not write %s on the backup server (%s): the next verify reads these files again",
            VERIFY_RECORD,
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
        )
