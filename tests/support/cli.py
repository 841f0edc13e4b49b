"""The console script run as a user would run it, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cli.local_server import stop_recorded

CLI = Path(sys.executable).with_name("zfs-offsite")

# The Prefect homes base_env gave out that a module's commands may have started a local server
# under; tests/conftest.py stops them when the module ends (stop_local_servers).
_PREFECT_HOMES: set[Path] = set()
# A module's commands share one local server, as a user's do: each then skips a server start
# (~5 s, more under load). Long enough to span a module's tests, short enough that a server a
# crashed session leaves behind stops by itself soon. TEST_LOCAL_SERVER_IDLE=0 runs the tiers
# the old way, a server per command (to measure the difference).
TEST_SERVER_IDLE = os.environ.get("TEST_LOCAL_SERVER_IDLE", "180")


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


def file_archive_cli(root: Path, pool: str) -> Cli:
    """The CLI on `pool` with a file:// archive under `root`, its own Prefect home and cwd."""
    (root / "cwd").mkdir()
    env = base_env(root / "prefect") | {
        "ZFS_OFFSITE_SOURCE__POOL": pool,
        "ZFS_OFFSITE_TARGET__URL": f"file://{root / 'archive'}",
    }
    return Cli(env, root / "cwd")


def base_env(prefect_home: Path) -> dict[str, str]:
    """The process environment minus anything that would point the CLI elsewhere."""
    _PREFECT_HOMES.add(prefect_home)
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
        # Never this machine's /etc/default/zfs-offsite: a test names its own env file.
        "OFFSITE_ENV_FILE": str(prefect_home / "no-env-file"),
        # The shared local server (cli/local_server.py), stopped at the module's end; a test
        # of the per-command server sets 0.
        "OFFSITE_LOCAL_SERVER_IDLE": TEST_SERVER_IDLE,
    }


def stop_local_servers() -> None:
    """Stop every local server started under a Prefect home base_env gave out, so none
    outlives the module that used it."""
    while _PREFECT_HOMES:
        stop_recorded(_PREFECT_HOMES.pop())
