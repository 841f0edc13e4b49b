"""The prune flow: a dry run changes nothing; a prune removes only what retention allows."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from flows.prune import prune_flow
from tests.support.flow_runs import table_artifact
from tests.support.services import Pool
from tests.support.zfsdata import MEMBERS, SNAP
from zfs_offsite.report.run_report import artifact_key

pytestmark = pytest.mark.integration


def test_prune_flow_dry_run_then_prune(
    backed_up: tuple[Pool, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, archive = backed_up
    monkeypatch.setenv("ZFS_OFFSITE_RETENTION__POLICY", "all 7d, daily 30d")
    stale = archive / "alice" / f"elabfs-alice@{SNAP}x.zst.partial"
    stale.write_bytes(b"left by a crashed upload")
    two_days_ago = time.time() - 2 * 86400
    os.utime(stale, (two_days_ago, two_days_ago))
    before = sorted(p.name for m in MEMBERS for p in (archive / m).iterdir())

    plans = prune_flow(dry_run=True)
    assert sorted(p.name for m in MEMBERS for p in (archive / m).iterdir()) == before
    assert [len(p.stale_partials) for p in plans] == [1, 0, 0]
    rows = table_artifact(artifact_key("prune-files", "127-0-0-1"))
    assert {r["decision"] for r in rows} == {"keep", "would delete (stale partial upload)"}

    prune_flow()
    assert not stale.exists()
    assert len([n for n in before if not n.endswith(".partial")]) == len(
        [p for m in MEMBERS for p in (archive / m).iterdir()]
    )  # every backup and sidecar kept: all points are younger than 7 days
    summary = table_artifact(artifact_key("prune", "127-0-0-1"))
    assert [r["kept_points"] for r in summary] == [1, 1, 1]


def test_prune_flow_keeps_a_resumable_upload_for_its_setting(
    backed_up: tuple[Pool, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cut upload with checkpoints outlives the day a dead partial gets, then goes whole."""
    _, archive = backed_up
    cut = archive / "alice" / f"elabfs-alice@{SNAP}x.zst.0123456789ab.partial"
    pair = [cut, cut.with_name(cut.name.replace(".partial", ".ckpt.partial"))]
    two_days_ago = time.time() - 2 * 86400
    for path in pair:
        path.write_bytes(b"cut upload")
        os.utime(path, (two_days_ago, two_days_ago))

    prune_flow()
    assert all(p.exists() for p in pair)
    rows = table_artifact(artifact_key("prune-files", "127-0-0-1"))
    assert {r["file"]: r["decision"] for r in rows if r["file"].endswith(".partial")} == {
        p.name: "left alone: partial upload with checkpoints, kept 7 days for a resume"
        for p in pair
    }

    monkeypatch.setenv("ZFS_OFFSITE_RETENTION__RESUMABLE_PARTIAL_DAYS", "1.5")
    prune_flow()
    assert not any(p.exists() for p in pair)
    rows = table_artifact(artifact_key("prune-files", "127-0-0-1"))
    assert {r["file"]: r["decision"] for r in rows if r["file"].endswith(".partial")} == {
        p.name: "deleted (partial upload with checkpoints, older than 1.5 days)" for p in pair
    }
