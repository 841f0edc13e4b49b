"""Commands that run a flow: one error line and a documented exit code, never a traceback."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cli.flow_run import STARTING, STARTUP_ENV
from cli.local_server import IDLE_ENV
from tests.support.cli import Cli, base_env
from tests.support.prefect_server import prefect_server
from tests.support.services import free_port
from tests.support.zfsdata import MEMBERS
from zfs_offsite.archive.identity import MARKER_NAME

pytestmark = pytest.mark.integration


# The server per command (OFFSITE_LOCAL_SERVER_IDLE=0), which these tests are about; the
# tier's other commands share one per module (tests/support/cli.py).
PER_COMMAND_SERVER = {IDLE_ENV: "0"}


def fresh_prefect_home(cli: Cli, tmp_path: Path, **env: str) -> Cli:
    """The same CLI with a Prefect home never used: the server's first, slowest start."""
    settings = {k: v for k, v in cli.env.items() if k.startswith("ZFS_OFFSITE_")}
    return Cli(base_env(tmp_path / "prefect") | settings | env, cli.cwd)


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


def test_corrupt_file_fails_verify_and_makes_status_critical(
    cli: Cli, archive: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "archive"
    shutil.copytree(archive, copy)
    on_copy = cli.with_env(ZFS_OFFSITE_TARGET__URL=f"file://{copy}")
    (bob_file,) = (copy / "bob").glob("*.zst")
    flip_a_byte(bob_file)

    verify = on_copy("verify", "--json")
    assert verify.code == 1, verify.output
    assert "Traceback" not in verify.output
    assert verify.err_lines[-1] == "error: verify failed: verify found 1 unsound member(s): bob"
    document = json.loads(verify.stdout)
    assert (document["status"], document["error"]) == (
        "failed",
        "verify found 1 unsound member(s): bob",
    )
    verdicts = {m["member"]: m["verdict"] for m in document["members"]}
    assert verdicts == {"alice": "ok", "bob": "corrupt", "carol": "ok"}
    (bob,) = [m for m in document["members"] if m["member"] == "bob"]
    assert bob["files"][0]["file"] == bob_file.name and "corrupt" in bob["files"][0]["detail"]

    status = on_copy("status", "--json")
    assert status.code == 2, status.output
    members = {m["member"]: m for m in json.loads(status.stdout)["members"]}
    assert members["bob"]["status"] == "critical"
    assert members["bob"]["reasons"] == [f"corrupt: {bob_file.name}", "nothing restorable"]
    assert members["bob"]["corrupt_files"] == [bob_file.name]
    assert members["alice"]["status"] == members["carol"]["status"] == "ok"


def test_verify_all_reads_every_file_and_records_it(
    cli: Cli, archive: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "archive"
    shutil.copytree(archive, copy)
    on_copy = cli.with_env(ZFS_OFFSITE_TARGET__URL=f"file://{copy}")
    (copy / ".zfs-offsite-verified.json").write_text("{ half a record")

    verify = on_copy("verify", "--all", "--json")
    assert verify.code == 0, verify.output
    assert "Traceback" not in verify.output
    files = [f for m in json.loads(verify.stdout)["members"] for f in m["files"]]
    assert len(files) == len(MEMBERS)
    assert {(f["verdict"], f["read"]) for f in files} == {("ok", "in full: --all")}
    record = json.loads((copy / ".zfs-offsite-verified.json").read_text())
    assert sorted(record["members"]) == sorted(MEMBERS)
    assert {f["file"] for f in files} == {
        name for m in record["members"].values() for name in m["files"]
    }


def test_an_unreadable_verify_record_is_said_without_verbose_and_reads_everything(
    cli: Cli, archive: Path, tmp_path: Path
) -> None:
    """A record of 100,000 nested `[` failed verify with 'maximum recursion depth'; the
    warning of an unreadable record showed only with -v while rows said 'never read'."""
    copy = tmp_path / "archive"
    shutil.copytree(archive, copy)
    on_copy = cli.with_env(ZFS_OFFSITE_TARGET__URL=f"file://{copy}")
    record = copy / ".zfs-offsite-verified.json"
    record.write_bytes(b"[" * 100_000 + b"]" * 100_000)

    verify = on_copy("verify")
    assert verify.code == 0, verify.output
    assert "Traceback" not in verify.output
    (warning,) = [line for line in verify.err_lines if line.startswith("warning:")]
    assert warning.startswith(
        "warning: the verify record .zfs-offsite-verified.json was unreadable (maximum "
        "recursion depth exceeded"
    )
    assert warning.endswith("): every file was read in full")
    assert verify.stdout.count("in full: the verify record was unreadable") == len(MEMBERS)
    assert "never read" not in verify.stdout
    assert sorted(json.loads(record.read_text())["members"]) == sorted(MEMBERS)

    # A directory in the record's place, ext4's lost+found and a hidden directory at the
    # root are no members: verify passes and leaves no partial file beside them.
    record.unlink()
    for name in (record.name, "lost+found", ".Trash-0"):
        (copy / name).mkdir()
    for _ in range(2):
        verify = on_copy("verify", "--json")
        assert verify.code == 0, verify.output
        document = json.loads(verify.stdout)
        assert sorted(m["member"] for m in document["members"]) == sorted(MEMBERS)
        (note,) = document["warnings"]
        assert note == (
            "the verify record .zfs-offsite-verified.json was unreadable (it is a directory at "
            "the target's root: move it aside so verify can record what it read): every file "
            "was read in full"
        )
    assert sorted(p.name for p in copy.iterdir()) == sorted(
        [*MEMBERS, record.name, "lost+found", ".Trash-0", MARKER_NAME]
    )


@contextmanager
def immutable(directory: Path) -> Iterator[Path]:
    """A directory even root cannot write into (EPERM), undone afterwards."""
    directory.mkdir()
    subprocess.run(["chattr", "+i", str(directory)], check=True)
    try:
        yield directory
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)


def test_backup_to_an_unwritable_target_fails_with_one_line(cli: Cli, tmp_path: Path) -> None:
    with immutable(tmp_path / "locked") as locked:
        done = cli(
            "backup",
            ZFS_OFFSITE_TARGET__URL=f"file://{locked}",
            ZFS_OFFSITE_RETRIES="0",
            **PER_COMMAND_SERVER,
        )
    assert done.code == 1, done.output
    assert "Traceback" not in done.output
    # The first thing a first backup writes is the archive's marker: its failure fails all.
    last = done.err_lines[-1]
    assert last.startswith(
        f"error: backup failed for 3 member(s): alice, bob, carol: create {locked}/"
        ".zfs-offsite-archive.json."
    )
    assert "Operation not permitted (permission denied on the backup target)" in last
    assert STARTING in done.err_lines


def test_a_permission_error_is_not_retried(cli: Cli, tmp_path: Path) -> None:
    with immutable(tmp_path / "locked") as locked:
        done = cli("-v", "backup", "-m", "alice", ZFS_OFFSITE_TARGET__URL=f"file://{locked}")
    assert done.code == 1
    assert "Retry 1/" not in done.stderr


def test_a_server_that_does_not_start_in_time_is_one_line_and_exit_3(
    cli: Cli, tmp_path: Path
) -> None:
    done = fresh_prefect_home(cli, tmp_path, **PER_COMMAND_SERVER)("backup", **{STARTUP_ENV: "1"})
    assert done.code == 3, done.output
    assert done.stdout == ""
    assert done.err_lines[-2:] == [
        STARTING,
        f"error: the local Prefect server did not start within 1 s: raise {STARTUP_ENV} "
        "(e.g. 600) or set PREFECT_API_URL to a running server",
    ]


def test_an_unreachable_prefect_api_url_is_one_line_and_exit_3(cli: Cli) -> None:
    url = f"http://127.0.0.1:{free_port()}/api"
    done = cli("prune", "--dry-run", PREFECT_API_URL=url)
    assert done.code == 3, done.output
    (error,) = [line for line in done.err_lines if line.startswith("error:")]
    assert error.startswith(
        f"error: cannot reach the Prefect server at {url} (PREFECT_API_URL from the environment): "
    )
    assert error == done.err_lines[-1]
    assert STARTING not in done.stderr


def test_an_unknown_member_in_a_flow_command_is_exit_2(cli: Cli, archive: Path) -> None:
    done = cli("verify", "-m", "nosuch")
    assert done.code == 2, done.output
    assert done.err_lines[-1] == (
        "error: verify failed: parameter members: no member directory named nosuch"
    )
    assert "Traceback" not in done.output


@contextmanager
def busy_cpus(count: int = 2) -> Iterator[None]:
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def test_the_first_backup_passes_on_a_busy_machine(cli: Cli, tmp_path: Path) -> None:
    """README's first command on a fresh Prefect home while two processes burn both cores."""
    fresh = fresh_prefect_home(
        cli, tmp_path, ZFS_OFFSITE_TARGET__URL=f"file://{tmp_path}/archive", **PER_COMMAND_SERVER
    )
    with busy_cpus():
        done = fresh("backup", timeout=900)
    assert done.code == 0, done.output
    assert "Traceback" not in done.output
    assert STARTING in done.err_lines
    assert sorted(p.name for p in (tmp_path / "archive").iterdir()) == sorted(
        [*MEMBERS, MARKER_NAME]
    )


def test_a_local_run_is_kept_in_the_prefect_home_and_its_server_ends_with_the_command(
    cli: Cli, tmp_path: Path
) -> None:
    """No PREFECT_API_URL: the run lands in PREFECT_HOME's database, where a later
    `prefect server start` and `history` find it; the command's server is gone."""
    home = tmp_path / "prefect"
    fresh = fresh_prefect_home(
        cli, tmp_path, ZFS_OFFSITE_TARGET__URL=f"file://{tmp_path}/archive", **PER_COMMAND_SERVER
    )
    done = fresh("-v", "backup", "-m", "alice")
    assert done.code == 0, done.output
    assert "prefect config set" not in done.output  # the server's banner stays in its log
    (port,) = re.findall(r"local Prefect server at http://127\.0\.0\.1:(\d+)/api,", done.stderr)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(port)), timeout=5)

    # Nothing configured: `history` reads the same local history, and says whose it is.
    local = fresh("history", "--json", "--since", "1d")
    assert local.code == 0, local.output
    rows = json.loads(local.stdout)["rows"]
    assert [(r["member"], r["state"]) for r in rows] == [("alice", "Completed")]
    assert any(
        line.startswith("the runs started from this machine's CLI") and str(home) in line
        for line in local.err_lines
    ), local.err_lines

    with prefect_server(home) as server:
        history = fresh(
            "history", "--json", "--since", "1d", PREFECT_API_URL=server["PREFECT_API_URL"]
        )
    assert history.code == 0, history.output
    rows = json.loads(history.stdout)["rows"]
    assert [(r["member"], r["state"]) for r in rows] == [("alice", "Completed")]
