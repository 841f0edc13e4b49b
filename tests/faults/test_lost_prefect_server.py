"""The Prefect server lost mid-upload: a committed backup is reported stored, not failed.

The run's record lives on the Prefect server; the stored file does not
depend on it. The CLI reports from the core's results (`jobs/ledger.py`),
with an exit code of its own, and without Prefect's event dumps.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cli.exit_codes import FAILED, STORED_RECORD_INCOMPLETE
from tests.support.cli import CLI, base_env
from tests.support.faults import SlowTarget, sha256sum_check, stored_files
from tests.support.prefect_server import running_prefect_server
from tests.support.services import Pool, SshServer
from tests.support.zfsdata import SNAP, create_member, snapshot, write_member_data

pytestmark = pytest.mark.integration
RATE = 2_000_000  # the 24 MB stream takes about 12 s: the kill at 2 MB leaves 11 s of it
# Prefect's client retries each request to a lost server 5 times, backing off 2, 4, ... 32 s:
# about a minute per request, and the flow's last two state changes each wait it out (the
# commands reference says the command ends "after about two to three minutes"). An admin
# who wants it sooner sets Prefect's own setting, as this test does: one retry, still
# through Prefect's retry path, and the same outcome a few seconds after the upload.
CLIENT_RETRIES = {"PREFECT_CLIENT_MAX_RETRIES": "1"}


def partial_bytes(archive: Path) -> int:
    return sum(p.stat().st_size for p in archive.rglob("*.partial"))


@pytest.mark.parametrize("with_failing_member", [False, True], ids=["all-stored", "one-failed"])
def test_backup_stored_before_the_server_died_is_reported_stored(
    big_member: Pool,
    sftp_dir: Path,
    sshd: SshServer,
    slow_target: Callable[[int], SlowTarget],
    tmp_path: Path,
    with_failing_member: bool,
) -> None:
    if with_failing_member:
        # fay's member directory on the server is a link: the tool refuses to write there.
        dataset = create_member(big_member.name, "fay")
        write_member_data(big_member.mountpoint / "elabfs-fay", 3, 1)
        snapshot(dataset, SNAP)
        elsewhere = sftp_dir.parent / f"{sftp_dir.name}-elsewhere"
        elsewhere.mkdir()
        os.chown(elsewhere, sftp_dir.stat().st_uid, sftp_dir.stat().st_gid)
        (sftp_dir / "fay").symlink_to(elsewhere)
    home = tmp_path / "prefect"
    home.mkdir()
    env = base_env(home) | slow_target(RATE).env(sshd, big_member, sftp_dir)
    with running_prefect_server(home) as server:
        process = subprocess.Popen(
            [str(CLI), "backup"],
            env=env | {"PREFECT_API_URL": server.env["PREFECT_API_URL"]} | CLIENT_RETRIES,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 240
        while partial_bytes(sftp_dir) < 2_000_000:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the upload never started"
            time.sleep(0.2)
        server.kill()  # mid-upload: about 22 MB of erin's stream are still to go
        out, err = process.communicate(timeout=600)
    console = out + err
    expected = FAILED if with_failing_member else STORED_RECORD_INCOMPLETE
    assert process.returncode == expected, console[-3000:]
    assert "EventsWorker" not in console and "Event(" not in console, console[-3000:]
    assert "Traceback" not in console and "Error logging to API" not in console, console[-3000:]
    erin_file = f"erin/elabfs-erin@{SNAP}.zst"
    assert f"erin: stored {erin_file} (full)" in err, err
    assert "Prefect server stopped answering" in err and "may be incomplete" in err, err
    if with_failing_member:
        assert "fay: failed: " in err and "fay" in err.splitlines()[-1], err
        assert "backup failed for 1 member(s): fay (not stored)" in err, err
    else:
        assert "backup stored for every member" in err, err

    # The stored file is sound, and the next plan sees it as stored.
    assert [p.relative_to(sftp_dir).as_posix() for p in stored_files(sftp_dir)][:1] == [erin_file]
    sha256sum_check(sftp_dir)
    plan = subprocess.run(
        [str(CLI), "plan", "--json"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    actions = {m["member"]: m["action"] for m in json.loads(plan.stdout)["members"]}
    assert actions["erin"] == "up to date", plan.stdout + plan.stderr
