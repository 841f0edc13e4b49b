"""The real `zfs-offsite` console script in a subprocess, against real zfs-fuse pools.

Settings come from the environment, as on a host; the working directory is
empty so no `./zfs-offsite.toml` or `.env` leaks in. One Prefect home per
session, so the temporary server's database is migrated once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import MEMBERS
from tests.support.services import Pool, create_pool
from tests.support.zfsdata import create_member, snapshot, write_member_data

CLI = Path(sys.executable).with_name("zfs-offsite")
SNAP = "auto-20190806.0200-1w"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Cli:
    """Runs the console script with a fixed environment plus per-call overrides."""

    env: dict[str, str]
    cwd: Path

    def __call__(self, *args: str, timeout: float = 600, **env: str) -> Result:
        done = subprocess.run(
            [str(CLI), *args],
            env=self.env | env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def with_env(self, **env: str) -> Cli:
        return Cli(self.env | env, self.cwd)


def base_env(prefect_home: Path) -> dict[str, str]:
    """The process environment minus anything that would point the CLI elsewhere."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ZFS_OFFSITE_", "PREFECT_")) and k != "COLUMNS"
    }
    return env | {
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(prefect_home / "storage"),
        "ZFS_OFFSITE_RETRY_DELAY": "0.2",
    }


@pytest.fixture(scope="module")
def module_pool(zfs_fuse: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    """Three members with real data and one snapshot, shared by a module's tests."""
    pool = create_pool(tmp_path_factory.mktemp("pool"))
    for seed, member in enumerate(MEMBERS):
        dataset = create_member(pool.name, member)
        write_member_data(pool.mountpoint / f"elabfs-{member}", seed, megabytes=1)
        snapshot(dataset, SNAP)
    yield pool
    pool.destroy()


@pytest.fixture(scope="module")
def cli(module_pool: Pool, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """The CLI on `module_pool` with a local archive, and its own Prefect home."""
    root = tmp_path_factory.mktemp("cli")
    (root / "cwd").mkdir()
    env = base_env(root / "prefect") | {
        "ZFS_OFFSITE_SOURCE__POOL": module_pool.name,
        "ZFS_OFFSITE_TARGET__URL": f"file://{root / 'archive'}",
    }
    return Cli(env, root / "cwd")


@pytest.fixture(scope="module")
def archive(cli: Cli) -> Path:
    """The module pool backed up once through the CLI (the temporary Prefect server)."""
    done = cli("backup")
    assert done.code == 0, done.output
    assert "Traceback" not in done.output
    path = Path(cli.env["ZFS_OFFSITE_TARGET__URL"].removeprefix("file://"))
    assert sorted(p.name for p in path.iterdir()) == sorted(MEMBERS)
    return path
