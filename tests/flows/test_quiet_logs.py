"""A member failure is one line in the run's logs on the server, not two tracebacks."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogWorker

from flows.backup import backup_flow
from tests.support.flow_runs import sftp_env
from tests.support.services import Pool, SshServer

pytestmark = pytest.mark.integration


def test_a_member_failure_is_one_line_without_traceback(
    source_pool: Pool, sftp_dir: Path, sshd: SshServer, flow_env: Callable[..., None]
) -> None:
    flow_env(sftp_env(source_pool, sftp_dir, sshd))
    (sftp_dir / "bob").mkdir(mode=0o755)  # owned by root: the SFTP user cannot write there
    state = backup_flow(return_state=True)
    assert state.is_failed()
    APILogWorker.drain_all(timeout=30)  # the logs are sent in batches
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    shown = [f"{log.level} {log.name}: {log.message}" for log in logs]
    assert not [line for line in shown if "Traceback" in line], shown
    errors = [log.message for log in logs if log.level >= logging.ERROR]
    assert all("\n" not in message for message in errors), errors
    assert any("PermanentError" in m and "bob/.zfs-offsite.lock" in m for m in errors), errors
    assert any("MembersFailed('backup failed for 1 member(s): bob')" in m for m in errors), errors
