"""Members uploading in parallel share one bandwidth limit; the run's artifacts show it.

The real flow (max_parallel 2) on the real Prefect engine, zfs-fuse and sshd; the
rate is measured at a counting proxy in front of the sshd, over both streams.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from flows.backup import backup_flow
from tests.support.counting_proxy import CountingProxy
from tests.support.flow_runs import sftp_env, table_artifact
from tests.support.services import Pool, SshServer
from tests.support.zfsdata import SNAP, create_member, snapshot
from zfs_offsite.report.run_report import artifact_key

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LIMIT = 2e6
SIZE = 20_000_000  # per member: both together take about 20 s at the limit


def markdown_artifact(key: str) -> str:
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            limit=1,
            sort="CREATED_DESC",
        )
    return str(artifact.data)


def test_parallel_members_share_the_limit(
    pool_factory: Callable[[], Pool],
    sftp_dir: Path,
    sshd: SshServer,
    flow_env: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    pool = pool_factory()
    for seed, member in enumerate(("ann", "ben")):
        dataset = create_member(pool.name, member)
        data = random.Random(seed).randbytes(SIZE)  # incompressible: stored ≈ raw
        (pool.mountpoint / f"elabfs-{member}" / "random.bin").write_bytes(data)
        snapshot(dataset, SNAP)
    proxy = CountingProxy(sshd.port)
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts_line(proxy.port))
    flow_env(sftp_env(pool, sftp_dir, sshd, port=proxy.port, known_hosts=known))
    monkeypatch.setenv("ZFS_OFFSITE_TARGET__BANDWIDTH", "2MB/s")
    try:
        outcomes = backup_flow()
    finally:
        proxy.close()
    assert [o.action for o in outcomes] == ["full", "full"]
    streams = [o.result.stream for o in outcomes if o.result and o.result.stream]
    # They ran side by side for a good part of the time (the limiter lends a slow
    # stream's share to the other: on a busy box one send may lag and finish later)...
    overlap = min(s.finished for s in streams) - max(s.started for s in streams)
    whole = max(s.finished for s in streams) - min(s.started for s in streams)
    assert overlap.total_seconds() > 0.4 * whole.total_seconds(), (overlap, whole)
    # ...and together no faster than the one limit (each alone would have taken it all).
    measured = proxy.steady()
    print(f"two members sharing 2 MB/s: {measured} at the proxy")
    assert abs(measured.rate - LIMIT) <= 0.05 * LIMIT, measured
    rows = table_artifact(artifact_key("backup", os.uname().nodename))
    assert [(r["member"], r["bandwidth_limit"]) for r in rows] == [
        ("ann", "2 MB/s"),
        ("ben", "2 MB/s"),
    ]
    for r in rows:  # each got a share of it
        assert 0.5 < float(r["stored_mb_per_s"]) < 1.9, r
    summary = markdown_artifact(artifact_key("backup-summary", os.uname().nodename))
    line = next(x for x in summary.splitlines() if x.startswith("Uploaded: "))
    assert line.endswith("MB/s (bandwidth limit 2 MB/s)"), line
    achieved = float(line.split(", ")[1].split(" MB/s")[0])
    assert abs(achieved - 2.0) <= 0.1, line
