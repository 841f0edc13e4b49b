"""The real `zfs-offsite` console script in a subprocess, against real zfs-fuse pools.

Settings come from the environment, as on a host; the working directory is
empty so no `./zfs-offsite.toml` or `.env` leaks in. One Prefect home per
session, so the temporary server's database is migrated once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import Cli, file_archive_cli
from tests.support.services import Pool, create_pool
from tests.support.zfsdata import MEMBERS, populate_members


@pytest.fixture(scope="module")
def module_pool(zfs_fuse: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    """Three members with real data and one snapshot, shared by a module's tests."""
    pool = create_pool(tmp_path_factory.mktemp("pool"))
    populate_members(pool.name, pool.mountpoint, MEMBERS, megabytes=1)
    yield pool
    pool.destroy()


@pytest.fixture(scope="module")
def cli(module_pool: Pool, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """The CLI on `module_pool` with a local archive, and its own Prefect home."""
    return file_archive_cli(tmp_path_factory.mktemp("cli"), module_pool.name)


@pytest.fixture(scope="module")
def archive(cli: Cli) -> Path:
    """The module pool backed up once through the CLI (the temporary Prefect server)."""
    done = cli("backup")
    assert done.code == 0, done.output
    assert "Traceback" not in done.output
    path = Path(cli.env["ZFS_OFFSITE_TARGET__URL"].removeprefix("file://"))
    assert sorted(p.name for p in path.iterdir() if not p.name.startswith(".")) == sorted(MEMBERS)
    return path
