"""The verify flow: a corrupt file fails the run, is marked, and the CLI shows it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from flows.verify import verify_flow
from tests.support.flow_runs import table_artifact
from tests.support.services import Pool
from zfs_offsite.jobs.report import artifact_key
from zfs_offsite.jobs.verify import Verdict

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
