"""A private PostgreSQL cluster for the tests: Debian's binaries, a temp data dir, a free port.

The multi-host setup runs the Prefect server on PostgreSQL; the operations tier
starts its own cluster (as the `postgres` OS user: `initdb` refuses root) so
nothing touches a system cluster, and removes it afterwards.
"""

from __future__ import annotations

import glob
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.services import free_port

OS_USER = "postgres"


def binaries() -> Path:
    """The newest installed /usr/lib/postgresql/<version>/bin."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if not found:
        raise RuntimeError("PostgreSQL is not installed: run scripts/setup-system.sh (postgresql)")
    return Path(found[-1]).parent


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, user=OS_USER, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stdout}{done.stderr}")


@contextmanager
def postgres_cluster(database: str = "prefect") -> Iterator[str]:
    """Start a throw-away cluster; yields an asyncpg URL of `database` in it."""
    bin_dir = binaries()
    owner = pwd.getpwnam(OS_USER)
    # Not under pytest's tmp dir: that is 0700 root and the server runs as postgres.
    directory = Path(tempfile.mkdtemp(prefix="zfs-offsite-pg-", dir="/var/tmp"))
    directory.chmod(0o755)
    data = directory / "data"
    data.mkdir()
    for path in (directory, data):
        shutil.chown(path, owner.pw_uid, owner.pw_gid)
    port = free_port()
    pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data)]
    started = False
    try:
        _run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", OS_USER, "--auth=trust", "-E", "UTF8"]
        )
        options = f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        _run(
            [*pg_ctl, "-o", options, "-l", str(directory / "server.log"), "-w", "-t", "60", "start"]
        )
        started = True
        _run(
            [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", OS_USER, database]
        )
        yield f"postgresql+asyncpg://{OS_USER}@127.0.0.1:{port}/{database}"
    finally:
        if started:
            subprocess.run(
                [*pg_ctl, "-m", "immediate", "-w", "stop"], user=OS_USER, capture_output=True
            )
        shutil.rmtree(directory, ignore_errors=True)
