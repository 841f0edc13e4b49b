"""The drill flow: rotation until every member is proven restorable."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from flows.drill import drill_flow
from tests.support.flow_runs import table_artifact
from tests.support.services import Pool
from tests.support.zfsdata import MEMBERS, SNAP, guid
from zfs_offsite.report.run_report import artifact_key

pytestmark = pytest.mark.integration


def test_drill_rotates_until_every_member_is_proven(
    backed_up: tuple[Pool, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    pool, archive = backed_up
    monkeypatch.setenv("ZFS_OFFSITE_DRILL__CYCLE_RUNS", "2")
    first = drill_flow()
    second = drill_flow()
    assert len(first) == len(second) == 2  # ceil(3 members / 2 runs)
    assert set(first) | set(second) == set(MEMBERS)
    records = json.loads((archive / ".zfs-offsite-drills.json").read_text())
    for member in MEMBERS:
        assert records[member]["guid"] == guid(f"{pool.name}/elabfs-{member}@{SNAP}")
        assert records[member]["guid_checked_against"] == "source"
    rows = table_artifact(artifact_key("drill", os.uname().nodename))
    assert all(r["last_proven"] != "never" for r in rows)
    scratch = pool.mountpoint / "zfs-offsite-drill"
    assert not any(scratch.iterdir()) if scratch.exists() else True
