"""Restore, verify and drill flows on the Prefect harness, real zfs-fuse and the real sshd."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from flows.backup import backup_flow
from flows.prune import prune_flow
from flows.restore import restore_flow
from flows.verify import drill_flow, verify_flow
from tests.conftest import MEMBERS
from tests.flows.test_backup_flow import sftp_env, table_artifact
from tests.support.services import Pool, SshServer
from tests.support.zfsdata import guid, tree_digest
from zfs_offsite.jobs.report import artifact_key
from zfs_offsite.jobs.verify import Verdict

pytestmark = pytest.mark.integration
SNAP = "auto-20190806.0200-1w"


@pytest.fixture
def backed_up(
    source_pool: Pool, sftp_dir: Path, sshd: SshServer, flow_env: Callable[..., None]
) -> tuple[Pool, Path]:
    flow_env(sftp_env(source_pool, sftp_dir, sshd))
    assert [o.action for o in backup_flow()] == ["full"] * 3
    return source_pool, sftp_dir


def test_restore_flow_receives_the_newest_snapshot(
    backed_up: tuple[Pool, Path], pool_factory: Callable[[], Pool]
) -> None:
    pool, _ = backed_up
    target = pool_factory()
    result = restore_flow(member="alice", destination=f"{target.name}/alice")
    assert result.snapshot == SNAP
    assert guid(f"{target.name}/alice@{SNAP}") == guid(f"{pool.name}/elabfs-alice@{SNAP}")
    assert tree_digest(target.mountpoint / "alice") == tree_digest(pool.mountpoint / "elabfs-alice")
    state = restore_flow(member="nobody", destination=f"{target.name}/x", return_state=True)
    assert state.is_failed()
    assert "no backup files" in str(state.result(raise_on_failure=False))


def test_verify_flow_fails_on_a_corrupt_file_and_cli_shows_it(
    backed_up: tuple[Pool, Path],
) -> None:
    _, archive = backed_up
    assert {r.verdict for r in verify_flow()} == {Verdict.OK}
    (bob_file,) = (archive / "bob").glob("*.zst")
    data = bytearray(bob_file.read_bytes())
    data[len(data) // 2] ^= 1
    bob_file.write_bytes(bytes(data))

    state = verify_flow(return_state=True)
    assert state.is_failed()
    assert "unsound member(s): bob" in str(state.result(raise_on_failure=False))
    rows = {r["member"]: r for r in table_artifact(artifact_key("verify", "127-0-0-1"))}
    assert rows["bob"]["verdict"] == "corrupt" and "corrupt" in rows["bob"]["detail"]
    assert rows["alice"]["verdict"] == rows["carol"]["verdict"] == "ok"
    assert bob_file.exists() and bob_file.with_name(bob_file.name + ".corrupt").exists()

    cli = CliRunner().invoke(app, ["verify", "--member", "bob"])
    assert cli.exit_code == 1
    assert "corrupt" in cli.output and "bob" in cli.output


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
