"""tests/support/rgw.py stops exactly what it started: no store outlives its test run."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.support.rgw import Rgw, _http_ok, _pids_naming, start, stop

REPO = Path(__file__).resolve().parents[2]

KILLED_RUN = """
import os, signal, sys
from pathlib import Path
from tests.support.rgw import start
store = start(Path(sys.argv[1]))
print(store.directory, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def gone_within(conf: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _pids_naming(conf) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not _pids_naming(conf)


def test_stop_ends_its_own_daemons_and_no_other_store(rgw: Rgw, tmp_path: Path) -> None:
    other = start(tmp_path)
    conf = str(other.conf)
    try:
        assert len(_pids_naming(conf)) == 3 and _http_ok(other.endpoint)
    finally:
        stop(Path(other.directory))
    assert gone_within(conf, 5) and not Path(other.directory).exists()
    assert _http_ok(rgw.endpoint)  # the session's store, on the same machine, still answers
    rgw.client().list_objects_v2(Bucket=rgw.bucket)


def test_a_killed_test_run_leaves_no_daemon_running(rgw: Rgw, tmp_path: Path) -> None:
    """SIGKILL skips every finalizer: the daemons die with the process that started them."""
    run = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == -9, run.stderr
    directory = Path(run.stdout.strip())
    try:
        assert gone_within(str(directory / "ceph.conf"), 5)
    finally:
        stop(directory)  # its files (and, were the test to fail, its daemons)
    assert _http_ok(rgw.endpoint)
