"""`history` as an auditor reads it, through the real CLI against a real `prefect server start`.

The backup is a manual `zfs-offsite backup` whose server comes from the host's
env file (as scripts/install.sh writes /etc/default/zfs-offsite), on real
zfs-fuse data; `history` then answers "last good backup of alice, and its
file" in one command, within 100 columns.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Scheduled

from cli.flow_run import STARTING
from flows.backup import backup_flow
from tests.support.cli import Cli
from tests.support.prefect_server import prefect_server
from tests.support.services import free_port
from tests.support.zfsdata import SNAP

pytestmark = pytest.mark.integration


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    home = tmp_path / "server"
    home.mkdir()
    with prefect_server(home) as env:
        yield env["PREFECT_API_URL"]


def schedule_a_night(api_url: str, hours_from_now: float) -> str:
    """A backup run the scheduler would have made, due `hours_from_now`; its name."""
    due = datetime.now(UTC) + timedelta(hours=hours_from_now)
    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        run = client.create_flow_run(
            backup_flow, name=f"his-scheduled-{hours_from_now}", state=Scheduled(scheduled_time=due)
        )
    return run.name


def test_last_good_backup_of_alice_from_a_manual_run_on_the_env_files_server(
    cli: Cli, server: str, tmp_path: Path
) -> None:
    env_file = tmp_path / "default-zfs-offsite"
    env_file.write_text(
        "# as scripts/install.sh writes /etc/default/zfs-offsite\n"
        "OFFSITE_HOST=his-nas\n"
        f'PREFECT_API_URL="{server}"\n'
    )
    archive = tmp_path / "archive"
    host = cli.with_env(OFFSITE_ENV_FILE=str(env_file), ZFS_OFFSITE_TARGET__URL=f"file://{archive}")
    said = f"Prefect server: {server} (PREFECT_API_URL from {env_file})"

    done = host("backup")
    assert done.code == 0, done.output
    assert said in done.err_lines and STARTING not in done.stderr
    (stored,) = (archive / "alice").glob("*.zst")
    future = schedule_a_night(server, hours_from_now=3)

    last = host("history", "--member", "alice", "--last", COLUMNS="100")
    assert last.code == 0, last.output
    assert said in last.err_lines
    lines = last.stdout.splitlines()
    assert max(map(len, lines)) <= 100, last.stdout
    assert f"  file      alice/{stored.name}" in lines  # whole, on its own line
    assert f"  snapshot  {SNAP}" in lines
    (head,) = [line for line in lines if line.startswith("alice: full finished ")]
    assert f"{datetime.fromtimestamp(stored.stat().st_mtime, UTC):%Y-%m-%d}" in head
    assert not any(line.startswith(("bob", "carol")) for line in lines)  # --member alice

    nights = host("history", COLUMNS="100")
    assert nights.code == 0, nights.output
    assert max(map(len, nights.stdout.splitlines())) <= 100, nights.stdout
    assert future not in nights.stdout and "Scheduled" not in nights.stdout
    (night,) = [line for line in nights.stdout.splitlines() if "Completed" in line]
    assert "-" in night.split("│")[6]  # no member failed

    document = json.loads(host("history", "--json", "--scheduled").stdout)
    assert document["server"] == server
    (alice,) = [r for r in document["last_good"] if r["member"] == "alice"]
    assert alice["file"] == f"alice/{stored.name}" and alice["snapshot"].endswith(SNAP)
    assert alice["sha256"] == hashlib.sha256(stored.read_bytes()).hexdigest()
    assert alice["finished"]
    ran = [n for n in document["nights"] if n["state"] == "Completed"]
    assert [(n["members_ok"], n["members_failed"]) for n in ran] == [(3, [])]
    assert ran[0]["stored_bytes"] == sum(p.stat().st_size for p in archive.glob("*/*.zst"))
    assert future in [n["night"] for n in document["nights"]]  # only with --scheduled

    past = json.loads(host("history", "--json").stdout)
    assert future not in [n["night"] for n in past["nights"]]


def test_the_environment_wins_over_the_env_file(cli: Cli, tmp_path: Path) -> None:
    env_file = tmp_path / "default-zfs-offsite"
    env_file.write_text(f"PREFECT_API_URL=http://127.0.0.1:{free_port()}/api\n")
    named = f"http://127.0.0.1:{free_port()}/api"
    done = cli("history", OFFSITE_ENV_FILE=str(env_file), PREFECT_API_URL=named, timeout=120)
    assert done.code == 3, done.output
    assert done.err_lines[-1].startswith(
        f"error: cannot reach the Prefect server at {named} (PREFECT_API_URL from the environment)"
    )


def test_the_env_files_auth_string_goes_with_its_url_and_is_never_printed(
    cli: Cli, tmp_path: Path
) -> None:
    secret = "admin:his-s3cret"
    home = tmp_path / "server"
    home.mkdir()
    with prefect_server(home, settings={"PREFECT_SERVER_API_AUTH_STRING": secret}) as env:
        url = env["PREFECT_API_URL"]
        env_file = tmp_path / "default-zfs-offsite"
        host = cli.with_env(OFFSITE_ENV_FILE=str(env_file))

        env_file.write_text(f"PREFECT_API_URL={url}\n")  # no auth string: refused
        refused = host("history", "--json")
        assert (refused.code, refused.stdout) == (3, "")
        assert refused.err_lines[-1] == (
            f"error: the Prefect server at {url} refused this command (HTTP 401): set "
            "PREFECT_API_AUTH_STRING to its user:password (the server's "
            f"PREFECT_SERVER_API_AUTH_STRING) where PREFECT_API_URL is set ({env_file})"
        )

        env_file.write_text(f"PREFECT_API_URL={url}\nPREFECT_API_AUTH_STRING={secret}\n")
        done = host("history", "--json")
        assert done.code == 0, done.output
        assert json.loads(done.stdout)["server"] == url
        assert "s3cret" not in done.output
