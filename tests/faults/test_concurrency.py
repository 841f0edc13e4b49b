"""Two runs at once on one member: one writer, never a truncated or doubled upload."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.faults import (
    SlowTarget,
    leftovers,
    python_env,
    sha256sum_check,
    stored_files,
)
from tests.support.services import Pool, SshServer
from tests.support.zfsdata import SNAP
from zfs_offsite.archive.lock import LOCK_NAME

pytestmark = pytest.mark.integration
RATE = 3_000_000  # bytes a second: the 24 MB stream takes about 8 s


def start_backup(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.backup_once"],
        env=python_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def outcome(process: subprocess.Popen[str]) -> dict[str, dict[str, str]]:
    out, err = process.communicate(timeout=300)
    assert out.strip(), f"no outcome printed; stderr: {err[-2000:]}"
    return json.loads(out.strip().splitlines()[-1])["erin"]


def test_second_run_fails_naming_the_holder(
    big_member: Pool,
    sftp_dir: Path,
    sshd: SshServer,
    slow_target: Callable[[int], SlowTarget],
) -> None:
    env = slow_target(RATE).env(sshd, big_member, sftp_dir) | {
        "ZFS_OFFSITE_LOCK__WAIT_SECONDS": "0"
    }
    runs = [start_backup(env), start_backup(env)]  # started together
    results = [outcome(r) for r in runs]
    actions = sorted(r.get("action", "error") for r in results)
    assert actions == ["error", "full"], results
    (failed,) = [r for r in results if "error" in r]
    assert failed["type"] == "LockBusyError"
    holder_pid = next(r.pid for r, res in zip(runs, results, strict=True) if "action" in res)
    assert failed["error"].startswith("member erin: backup run manual on ")
    assert f"(pid {holder_pid})" in failed["error"]
    assert "lock.wait_seconds" in failed["error"]
    assert [p.name for p in stored_files(sftp_dir)] == [
        f"elabfs-erin@{SNAP}.zst" + s for s in ("", ".json", ".sha256")
    ]
    sha256sum_check(sftp_dir)
    assert leftovers(sftp_dir) == []


def test_second_run_waits_and_sends_nothing_twice(
    big_member: Pool,
    sftp_dir: Path,
    sshd: SshServer,
    slow_target: Callable[[int], SlowTarget],
) -> None:
    target = slow_target(RATE)
    env = target.env(sshd, big_member, sftp_dir) | {"ZFS_OFFSITE_LOCK__WAIT_SECONDS": "120"}
    first = start_backup(env)
    # The second run starts once the first holds the member (a fixed head start
    # loses to a busy machine's scheduling).
    lock = sftp_dir / "erin" / LOCK_NAME
    deadline = time.monotonic() + 120
    while not lock.exists() and first.poll() is None:
        assert time.monotonic() < deadline, "the first run never took the lock"
        time.sleep(0.1)
    second = start_backup(env)
    results = [outcome(first), outcome(second)]
    assert [r.get("action") for r in results] == ["full", "up to date"], results
    assert "stored by another run meanwhile" in results[1]["reason"]
    files = stored_files(sftp_dir)
    assert [p.name for p in files] == [
        f"elabfs-erin@{SNAP}.zst" + s for s in ("", ".json", ".sha256")
    ]
    # Only one stream went over the wire (plus the small listing and lock traffic).
    assert target.proxy.sent < 1.3 * files[0].stat().st_size
    sha256sum_check(sftp_dir)
    assert leftovers(sftp_dir) == []
