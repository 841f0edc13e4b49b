"""The test tiers: plain `pytest` runs the fast tier, off the host's own files.

The end-to-end proof, as a non-root user on a host with zfs-offsite installed, is
scripts/fast-tier-as-user.sh (scripts/test.sh runs it); these are its parts.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from cli.server_config import DEFAULT_ENV_FILE, ENV_FILE_ENV, env_file
from tests.support.tiers import ENTRY_POINT_MODULES, TierClock, is_fast, missing
from zfs_offsite import settings
from zfs_offsite.settings import config_origin

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent


def plain_pytest_selection(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *folders: str
) -> list[str]:
    """The node ids plain `pytest`, run in the checkout, picks when its testpaths are
    `folders` (in-process: its imports are loaded already, so it takes a second)."""
    monkeypatch.chdir(REPO)  # testpaths apply only when pytest runs from the rootdir
    result = pytester.runpytest_inprocess(
        "--collect-only",
        "-q",
        "-p",
        "no:cacheprovider",
        "-c",
        str(REPO / "pyproject.toml"),
        "--rootdir",
        str(REPO),
        "-o",
        f"testpaths={' '.join(folders)}",
    )
    assert result.ret == 0, result.stdout.str()
    return [line for line in result.outlines if "::" in line]


def test_plain_pytest_picks_the_pure_tests_and_none_that_need_a_service(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    picked = plain_pytest_selection(pytester, monkeypatch, "tests/cli", "tests/flows")
    modules = {node.split("::")[0] for node in picked}
    # Pure: no pool, no server, no subprocess of the installed command.
    assert "tests/cli/test_progress_bars.py" in modules
    assert "tests/cli/test_server_config.py" in modules
    # Pools (zfs_fuse), the Prefect test server, the console script, a root-only skipif.
    assert not modules & {
        "tests/cli/test_flow_commands.py",
        "tests/flows/test_core_logs.py",
        "tests/cli/test_config_command.py",
        "tests/cli/test_keygen_command.py",
    }


def test_a_service_fixture_or_tier_marker_leaves_the_fast_tier() -> None:
    pure = ("tmp_path", "monkeypatch")
    assert is_fast("cli/test_progress_bars.py", pure, (), conditional=False)
    assert not is_fast("cli/test_status_trust.py", (*pure, "zfs_fuse"), (), conditional=False)
    assert not is_fast("flows/test_core_logs.py", ("prefect",), (), conditional=False)
    assert not is_fast("s3/test_rgw_facts.py", ("rgw",), (), conditional=False)
    assert not is_fast("integration/test_x.py", pure, ("integration",), conditional=False)
    # A skipif (e.g. "needs root") outside tests/unit: the root run, where it runs.
    assert not is_fast("deployments/test_install.py", pure, ("skipif",), conditional=True)
    assert is_fast("unit/test_x.py", pure, ("skipif",), conditional=True)
    assert not is_fast("cli/test_config_command.py", pure, (), conditional=False)


def test_every_entry_point_module_exists() -> None:
    assert [m for m in sorted(ENTRY_POINT_MODULES) if not (TESTS / m).is_file()] == []


def on_a_bare_machine(need: str, euid: int = 0) -> str | None:
    return missing(need, euid=euid, which=lambda _: None, exists=lambda _: False, matches=no)


def on_a_test_machine(need: str) -> str | None:
    return missing(
        need, euid=0, which=lambda n: f"/usr/sbin/{n}", exists=lambda _: True, matches=any_
    )


def no(_: str) -> list[str]:
    return []


def any_(pattern: str) -> list[str]:
    return [pattern]


def test_a_missing_service_is_named_with_where_it_comes_from() -> None:
    assert on_a_bare_machine("root", euid=1000) == (
        "not root: run this tier as root (sudo), as scripts/test.sh does"
    )
    assert "no zfs-fuse binary" in (on_a_bare_machine("zfs-fuse") or "")
    assert "no sshd binary" in (on_a_bare_machine("sshd") or "")
    assert "no chromium/chromedriver" in (on_a_bare_machine("chromium") or "")
    assert "no PostgreSQL server binaries" in (on_a_bare_machine("postgresql") or "")
    assert "no Ceph RGW (ceph-mon, ceph-osd, radosgw" in (on_a_bare_machine("ceph") or "")
    for need in ("root", "zfs-fuse", "sshd", "chromium", "postgresql", "ceph"):
        assert on_a_test_machine(need) is None, need


def test_each_tiers_wall_time_from_its_first_start_to_its_last_end() -> None:
    now = iter([0.0, 1.0, 4.0, 5.0, 5.5, 9.0]).__next__
    clock = TierClock(clock=now)
    clock.started("unit")
    clock.finished("unit")  # 1.0
    clock.started("unit")
    clock.finished("unit")  # 5.0
    clock.started("integration")  # 5.5
    clock.finished("integration")  # 9.0
    assert [line.split() for line in clock.lines()] == [
        ["unit", "2", "tests", "5.0", "s"],
        ["integration", "1", "tests", "3.5", "s"],
    ]


def test_a_fast_test_sees_none_of_the_hosts_files() -> None:
    real_home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    assert Path.home() != real_home  # no ~/.ssh of the caller or of /var/lib/zfs-offsite
    assert env_file() != DEFAULT_ENV_FILE and not env_file().exists()
    assert list(Path.cwd().iterdir()) == []  # no ./zfs-offsite.toml, no .env
    ours = [name for name in os.environ if name.startswith(("ZFS_OFFSITE_", "OFFSITE_"))]
    assert ours == [ENV_FILE_ENV]  # the caller's settings and host names are gone
    system = [path for path in settings.CONFIG_CANDIDATES if path.is_absolute()]
    assert [str(path) for path in system] == ["/etc/zfs-offsite.toml"]
    assert settings.files.first_candidate() is None  # whatever this host's /etc holds
    assert "none found (looked for ./zfs-offsite.toml, /etc/zfs-offsite.toml" in config_origin()
