"""Settings for a flow run against the test services, and what the run left in Prefect."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
)

from tests.support.services import Pool, SshServer


def env_for(pool: str, url: str, key: Path, known_hosts: Path) -> dict[str, str]:
    return {
        "ZFS_OFFSITE_SOURCE__POOL": pool,
        "ZFS_OFFSITE_TARGET__URL": url,
        "ZFS_OFFSITE_TARGET__KEY_FILE": str(key),
        "ZFS_OFFSITE_TARGET__KNOWN_HOSTS": str(known_hosts),
        "ZFS_OFFSITE_TARGET__TIMEOUT": "10",
    }


def sftp_env(
    pool: Pool,
    archive: Path,
    sshd: SshServer,
    port: int | None = None,
    known_hosts: Path | None = None,
) -> dict[str, str]:
    url = f"sftp://{sshd.user}@127.0.0.1:{port or sshd.port}{archive}"
    return env_for(pool.name, url, sshd.client_key, known_hosts or sshd.known_hosts)


def task_runs(flow_run_id: UUID) -> dict[str, Any]:
    """The flow run's task runs by name."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    # A retried flow run keeps its old task runs: the newest per name wins.
    return {r.name: r for r in sorted(runs, key=lambda r: r.created)}


def table_artifact(host_key: str) -> list[dict[str, Any]]:
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[host_key])),
            limit=1,
            sort="CREATED_DESC",
        )
    data = artifacts[0].data
    return json.loads(data) if isinstance(data, str) else data
