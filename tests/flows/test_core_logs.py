"""The core's log lines reach each flow run's logs on the Prefect server (the audit trail)."""

from __future__ import annotations

import logging
from pathlib import Path

from prefect import flow, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.context import get_run_context
from prefect.logging.handlers import APILogWorker

from flows.logs import CORE_LOGGER, EXTRA_LOGGERS
from zfs_offsite.remote.local import LocalStore
from zfs_offsite.stream.checkpoints import StreamIdentity
from zfs_offsite.stream.resume import find_resume_point
from zfs_offsite.values.partials import partial_name

IDENTITY = StreamIdentity("tank/m", 1, None, ("zfs", "send", "tank/m@s"), False, "zstd", 3)


@task
def look_for_earlier_attempt(root: str) -> None:
    """The core at work inside a task: a partial without checkpoints is not resumed."""
    assert find_resume_point(LocalStore(Path(root)), "m/f.zst", IDENTITY) is None


@flow
def core_logging_flow(root: str) -> str:
    look_for_earlier_attempt(root)
    context = get_run_context()
    return str(context.flow_run.id)  # type: ignore[union-attr]


def test_core_info_lines_are_in_the_flow_runs_logs(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / partial_name("f.zst", "0123456789ab")).write_bytes(b"x" * 100)
    flow_run_id = core_logging_flow(str(tmp_path))
    APILogWorker.drain_all(timeout=30)  # the logs are sent in batches
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    core = [log for log in logs if log.name.startswith(f"{CORE_LOGGER}.")]
    assert [(log.name, log.level) for log in core] == [
        ("zfs_offsite.stream.resume", logging.INFO)
    ], [log.message for log in logs]
    assert "earlier attempt f.zst.0123456789ab.partial not resumed: it has no checkpoints" in (
        core[0].message
    )
    assert core[0].task_run_id is not None  # filed under the task that logged it
    assert not (tmp_path / "m" / partial_name("f.zst", "0123456789ab")).exists()


def test_the_setting_names_the_core_logger() -> None:
    import os

    assert CORE_LOGGER in os.environ[EXTRA_LOGGERS].split(",")
