"""plan, status, --help, --version: fast, never Prefect, exit codes a monitor can use."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import zfs_offsite
from cli.flow_run import STARTING
from tests.support.cli import Cli
from tests.support.services import Pool
from tests.support.zfsdata import MEMBERS, SNAP, create_member, snapshot

pytestmark = pytest.mark.integration

# Runs one command in-process and reports its exit code and whether Prefect got imported.
PROBE = """
import json, sys
from cli.app import app
try:
    app(sys.argv[1:], prog_name="zfs-offsite")
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "prefect": sorted(m for m in sys.modules if m == "prefect"
      or m.startswith("prefect."))[:3]}), file=sys.stderr)
"""


def probe(cli: Cli, *args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        env=cli.env | {"PYTHONPATH": str(Path(__file__).parents[2])},
        cwd=cli.cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return json.loads(done.stderr.strip().splitlines()[-1])


def test_version_is_the_package_version(cli: Cli) -> None:
    done = cli("--version")
    expected = f"zfs-offsite {zfs_offsite.__version__}\n"
    assert (done.code, done.stdout, done.stderr) == (0, expected, "")


def test_help_lists_each_command_on_one_line(cli: Cli) -> None:
    """Wide enough for every description, no command's line breaks (a docstring's first
    paragraph is shown as written, its line breaks included)."""
    done = cli("--help", COLUMNS="200")
    panel = done.stdout.split("Commands")[1].splitlines()[1:-1]
    names = [row.strip("│ ").split()[0] for row in panel]
    assert done.code == 0 and "verify" in names and "backup" in names
    assert all(not row.startswith("│  ") for row in panel), "a description broke its line"


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("--version",),
        ("plan",),
        ("status",),
        ("plan", "--json"),
        ("status", "--json"),
        ("config",),
        ("config", "--check"),
    ],
)
def test_read_only_commands_never_import_prefect(cli: Cli, archive: Path, args: tuple[str]) -> None:
    result = probe(cli, *args)
    assert result["prefect"] == [], f"{args} imported {result['prefect']}"
    assert result["code"] in (0, None)


def test_plan_of_an_unknown_member_is_one_line_and_exit_2(cli: Cli, module_pool: object) -> None:
    done = cli("plan", "-m", "nosuch")
    assert done.code == 2
    assert done.stdout == ""
    error = (
        f"error: no member named nosuch in pool {cli.env['ZFS_OFFSITE_SOURCE__POOL']} "
        "(members: alice, bob, carol)"
    )
    assert done.err_lines[-1] == error  # after the config line, once settings print one
    assert [line for line in done.err_lines if line.startswith("error")] == [error]
    quiet = cli("-q", "plan", "-m", "nosuch")
    assert (quiet.code, quiet.err_lines) == (2, [error])


def test_plan_json_parses_back(cli: Cli, archive: Path) -> None:
    done = cli("plan", "--json")
    assert done.code == 0, done.output
    document = json.loads(done.stdout)  # stdout is the JSON and nothing else
    assert document["pool"] == cli.env["ZFS_OFFSITE_SOURCE__POOL"]
    assert document["target"] == cli.env["ZFS_OFFSITE_TARGET__URL"]
    assert [m["member"] for m in document["members"]] == list(MEMBERS)
    assert {m["action"] for m in document["members"]} == {"up to date"}
    assert set(document["members"][0]) == {"member", "action", "base", "target", "file", "reason"}
    assert STARTING not in done.stderr


def test_status_exit_codes_follow_the_age_thresholds(cli: Cli, archive: Path) -> None:
    ok = cli("status")
    assert ok.code == 0, ok.output
    assert "Traceback" not in ok.output

    stale = cli("status", "--warning-hours", "0.0001", "--json")
    assert stale.code == 1, stale.output
    document = json.loads(stale.stdout)
    assert (document["status"], document["exit_code"]) == ("warning", 1)
    assert {m["status"] for m in document["members"]} == {"warning"}
    alice = document["members"][0]
    assert alice["member"] == "alice" and alice["newest_archived"] == SNAP
    (reason,) = alice["reasons"]
    assert reason.startswith("newest backup ") and reason.endswith(" h old (> 0.0001 h)")
    assert alice["chain_length"] == 1 and alice["corrupt_files"] == []

    late = cli("status", "--warning-hours", "0", "--critical-hours", "0.0001", "--json")
    assert late.code == 2
    assert json.loads(late.stdout)["status"] == "critical"


def test_status_without_any_backup_is_critical(cli: Cli, tmp_path: Path) -> None:
    """An empty root is what an unmounted disk's mount point looks like: said, never ok."""
    empty = cli.with_env(ZFS_OFFSITE_TARGET__URL=f"file://{tmp_path}")
    done = empty("status", "--json")
    assert done.code == 2, done.output
    assert done.err_lines[-1].startswith(
        f"error: archive root file://{tmp_path} is empty: is the disk mounted?"
    )
    assert done.stdout == ""


def test_tables_are_not_cut_when_piped(cli: Cli, archive: Path) -> None:
    done = cli("status", "--warning-hours", "0.0001")
    assert done.code == 1
    target = cli.env["ZFS_OFFSITE_TARGET__URL"]
    assert f"-> {target}" in done.stdout  # the title, whole
    rows = [line for line in done.stdout.splitlines() if line.startswith("│ alice")]
    assert len(rows) == 1 and len(rows[0]) > 80
    assert "…" not in done.stdout
    assert "│" not in done.stderr  # the answer is on stdout; stderr holds info lines only


def test_quiet_status_prints_only_the_table(cli: Cli, archive: Path) -> None:
    done = cli("-q", "status")
    assert done.code == 0
    assert done.stderr == ""


def test_plan_fails_only_the_member_with_an_unusable_name(
    pool_factory: Callable[[], Pool], tmp_path: Path, cli: Cli
) -> None:
    pool = pool_factory()
    for name in ("alice", ".."):
        dataset = create_member(pool.name, name)
        snapshot(dataset, SNAP)
    done = cli.with_env(
        ZFS_OFFSITE_SOURCE__POOL=pool.name, ZFS_OFFSITE_TARGET__URL=f"file://{tmp_path}"
    )("plan", "--json")
    assert done.code == 1, done.output
    assert "Traceback" not in done.output
    rows = {r["member"]: r for r in json.loads(done.stdout)["members"]}
    assert rows["alice"]["action"] == "full"
    failed = rows[f"{pool.name}/elabfs-.."]
    assert failed["action"] == "failed"
    assert failed["reason"].startswith(f"dataset {pool.name}/elabfs-.. gives no usable member name")
