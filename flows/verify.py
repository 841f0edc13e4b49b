"""Verify the archive (every file read back) and drill restores into a scratch dataset."""

from __future__ import annotations

from contextlib import closing

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.task_runners import ThreadPoolTaskRunner

from flows.common import (
    WORKER_CAP,
    dated_run_name,
    error_of,
    label_run,
    only_known,
    settle,
    stops_streams_when_interrupted,
    submit_bounded,
)
from tasks.backup import discover
from tasks.restore import drill, verify
from zfs_offsite.errors import MembersFailed
from zfs_offsite.jobs.drill import choose_members, read_records
from zfs_offsite.jobs.report import artifact_key, drill_row, verification_rows, verification_summary
from zfs_offsite.jobs.verify import FAILING, MemberVerification, archived_members, linked_members
from zfs_offsite.remote.connect import open_store, source_host
from zfs_offsite.settings import load_settings


@flow(
    name="zfs-offsite-verify",
    flow_run_name=dated_run_name("verify"),
    task_runner=ThreadPoolTaskRunner(max_workers=WORKER_CAP),
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
    host = source_host(settings)
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
