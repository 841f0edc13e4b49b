"""Without a configured server, the first flow command starts a local one and later ones reuse it.

Each test has a Prefect home of its own (so a server of its own), with the
idle stop on (the other tiers share one per module, tests/support/cli.py); the
server is stopped by its recorded pids at the end. The flow command is
`prune --dry-run` on an empty file:// archive: a real flow run that needs no pool.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.local_server import IDLE_ENV, RECORD, Record, command_line, read_record, stop_recorded
from tests.support.cli import CLI, Cli, base_env
from tests.support.services import free_port

pytestmark = pytest.mark.integration

STARTING = "starting a local Prefect server…"  # the first command's progress line begins so


COMMAND = ("prune", "--dry-run")


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """A fresh Prefect home; whatever server a test left under it is stopped afterwards."""
    path = tmp_path / "prefect"
    yield path
    stop_recorded(path)


def shared(home: Path, idle: str = "600") -> Cli:
    """The CLI on an empty file:// archive beside `home`, with the shared local server on."""
    (home.parent / "cwd").mkdir(exist_ok=True)
    settings = {
        "ZFS_OFFSITE_SOURCE__POOL": "nopool",
        "ZFS_OFFSITE_TARGET__URL": f"file://{home.parent / 'archive'}",
    }
    return Cli(base_env(home) | settings | {IDLE_ENV: idle}, home.parent / "cwd")


def flow_run_names(record: Record) -> list[str]:
    """The flow runs the recorded server holds, asked with its basic-auth string."""
    request = urllib.request.Request(
        f"{record.api_url}/flow_runs/filter",
        data=b"{}",
        headers={
            "Content-Type": "application/json",
            "Authorization": "Basic " + base64.b64encode(record.auth.encode()).decode(),
        },
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=30) as response:
        return sorted(run["name"] for run in json.load(response))


def running(pid: int) -> bool:
    return bool(command_line(pid))


def test_a_second_command_reuses_the_server_the_first_started(home: Path) -> None:
    run = shared(home)
    first = run(*COMMAND)
    assert first.code == 0, first.output
    assert sum(line.startswith(STARTING) for line in first.err_lines) == 1, first.stderr
    record = read_record(home)
    assert record is not None and running(record.keeper_pid) and running(record.server_pid)
    for pid in (record.keeper_pid, record.server_pid):  # they outlive it: no setting of its own
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert not [v for v in environ if v.startswith(b"ZFS_OFFSITE_")], pid

    second = run(*COMMAND, **{IDLE_ENV: "900"})  # the running keeper's setting holds
    assert second.code == 0, second.output
    assert STARTING not in second.stderr
    assert f"local Prefect server: {record.api_url}" in second.stderr
    assert "it stops after 10 min idle" in second.stderr
    assert read_record(home) == record
    assert len(flow_run_names(record)) == 2  # both runs are in the one server's history


def test_two_commands_at_once_start_one_server(home: Path) -> None:
    run = shared(home)
    both = [
        subprocess.Popen(
            [str(CLI), *COMMAND],
            env=run.env,
            cwd=run.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=600) for process in both]
    assert [p.returncode for p in both] == [0, 0], outputs
    assert sum(err.count(STARTING) for _, err in outputs) == 1, outputs
    record = read_record(home)
    assert record is not None
    assert len(flow_run_names(record)) == 2


def test_the_server_stops_once_idle(home: Path) -> None:
    done = shared(home, idle="2")(*COMMAND)
    assert done.code == 0, done.output
    record = read_record(home)
    assert record is not None
    deadline = time.monotonic() + 300  # a bound on the wait, not a speed check
    while (home / RECORD).exists() or running(record.keeper_pid) or running(record.server_pid):
        assert time.monotonic() < deadline, f"still running after 300 s: {record}"
        time.sleep(1)


@pytest.mark.parametrize("stale", ["torn record", "pid of another program"])
def test_a_stale_record_is_replaced_and_another_program_left_alone(home: Path, stale: str) -> None:
    home.mkdir(parents=True)
    other = subprocess.Popen(["sleep", "600"])
    try:
        if stale == "torn record":
            (home / RECORD).write_text('{"keeper_pid": ')
        else:
            old = Record(other.pid, other.pid, free_port(), "zfs-offsite:old")
            (home / RECORD).write_text(json.dumps(old.__dict__))
        done = shared(home)(*COMMAND)
        assert done.code == 0, done.output
        assert sum(line.startswith(STARTING) for line in done.err_lines) == 1, done.stderr
        record = read_record(home)
        assert record is not None and record.keeper_pid != other.pid
        assert running(record.keeper_pid)
        assert other.poll() is None  # not ours: never signalled
        assert len(flow_run_names(record)) == 1
    finally:
        other.kill()
        other.wait()


def test_a_bad_idle_setting_is_one_line_and_exit_2(home: Path) -> None:
    done = shared(home, idle="soon")(*COMMAND)
    assert done.code == 2, done.output
    assert done.err_lines[-1] == (
        f"error: {IDLE_ENV}=soon: must be whole seconds from 0 (a server per command) to 604800"
    )
