"""Ctrl-C and SIGTERM to a real `zfs-offsite backup` mid-upload: streams stop, nothing kept."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.faults import ROOT, SlowTarget, leftovers, python_env, stored_files
from tests.support.services import Pool, SshServer

pytestmark = pytest.mark.integration
RATE = 1_000_000  # the 24 MB stream would take 24 s


def partial_bytes(archive: Path) -> int:
    return sum(p.stat().st_size for p in archive.rglob("*.partial"))


@pytest.mark.parametrize(
    ("sig", "code", "group"),
    [
        (signal.SIGINT, 130, False),
        (signal.SIGTERM, 143, False),
        # A terminal's Ctrl-C, and `systemctl stop`, signal the whole process group:
        # ssh, zfs send and the temporary Prefect server must outlive it for the clean-up.
        (signal.SIGINT, 130, True),
        (signal.SIGTERM, 143, True),
    ],
    ids=["sigint", "sigterm", "sigint-to-group", "sigterm-to-group"],
)
def test_signal_stops_the_upload_and_cleans_up(
    big_member: Pool,
    sftp_dir: Path,
    sshd: SshServer,
    slow_target: Callable[[int], SlowTarget],
    tmp_path: Path,
    sig: signal.Signals,
    code: int,
    group: bool,
) -> None:
    env = slow_target(RATE).env(sshd, big_member, sftp_dir) | {
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "ZFS_OFFSITE_RETRIES": "0",
    }
    process = subprocess.Popen(
        [str(ROOT / ".venv/bin/zfs-offsite"), "backup"],
        env=python_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a shell's job
    )
    deadline = time.monotonic() + 240
    while partial_bytes(sftp_dir) < 2_000_000:
        assert process.poll() is None, process.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "the upload never started"
        time.sleep(0.2)
    if group:
        os.killpg(process.pid, sig)
    else:
        process.send_signal(sig)
    sent = time.monotonic()
    output, _ = process.communicate(timeout=60)
    stopped_after = time.monotonic() - sent
    assert process.returncode == code, output[-3000:]
    assert stopped_after < 15, f"took {stopped_after:.1f} s to stop"
    assert f"interrupted by {sig.name}" in output
    assert stored_files(sftp_dir) == []
    assert leftovers(sftp_dir) == []
