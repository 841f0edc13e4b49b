"""The verify flow: a corrupt file fails the run, is marked, and the CLI shows it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from flows.backup import backup_flow
from flows.verify import verify_flow
from tests.support.flow_runs import table_artifact
from tests.support.services import Pool
from tests.support.zfsdata import MEMBERS, snapshot, write_member_data
from zfs_offsite.jobs.verify import Verdict
from zfs_offsite.report.run_report import artifact_key

pytestmark = pytest.mark.integration


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


def test_verify_flow_rotates_and_all_files_reads_everything(
    backed_up: tuple[Pool, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    pool, archive = backed_up
    for day in range(7, 10):  # alice: a full and three incrementals
        write_member_data(pool.mountpoint / "elabfs-alice", day, 1)
        snapshot(f"{pool.name}/elabfs-alice", f"auto-201908{day:02d}.0200-1w")
        assert [o.action for o in backup_flow(members=["alice"])] == ["incremental"]
    monkeypatch.setenv("ZFS_OFFSITE_VERIFY__CYCLE_RUNS", "2")
    files_key = artifact_key("verify-files", "127-0-0-1")

    verify_flow()
    first = {r["file"]: r for r in table_artifact(files_key)}
    assert len(first) == 6 and {r["read"] for r in first.values()} == {"in full: never read"}
    record = json.loads((archive / ".zfs-offsite-verified.json").read_text())["members"]
    assert set(record) == set(MEMBERS) and len(record["alice"]["files"]) == 4

    verify_flow()
    rows = [r for r in table_artifact(files_key) if r["member"] == "alice"]
    deferred = [r for r in rows if r["read"] == "deferred"]
    assert deferred and len(deferred) < 4  # half of alice's bytes wait for the next run
    for r in deferred:
        assert r["last_read"] == first[r["file"]]["last_read"] and r["verdict"] == "ok"
    summary = {r["member"]: r for r in table_artifact(artifact_key("verify", "127-0-0-1"))}
    assert summary["alice"]["deferred"] == len(deferred)
    assert summary["alice"]["read_in_full"] == 4 - len(deferred)

    verify_flow(all_files=True)
    rows = table_artifact(files_key)
    assert len(rows) == 6 and {r["read"] for r in rows} == {"in full: --all"}

    cli = CliRunner().invoke(app, ["--quiet", "verify", "--json", "--member", "alice"])
    assert cli.exit_code == 0, cli.output
    files = json.loads(cli.stdout)["members"][0]["files"]
    assert any(f["read"] == "deferred" for f in files)
    cli = CliRunner().invoke(app, ["--quiet", "verify", "--all", "--json", "--member", "alice"])
    assert cli.exit_code == 0, cli.output
    files = json.loads(cli.stdout)["members"][0]["files"]
    assert len(files) == 4 and {f["read"] for f in files} == {"in full: --all"}
