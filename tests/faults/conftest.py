"""Fault tests: real zfs-fuse, the private sshd, real processes, a slow or full backup server."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.faults import (
    SlowTarget,
)
from tests.support.proxy import ThrottlingProxy
from tests.support.services import Pool, SshServer, ensure_test_user
from tests.support.zfsdata import SNAP, create_member, snapshot, write_member_data


@pytest.fixture
def slow_target(sshd: SshServer, tmp_path: Path) -> Iterator[Callable[[int], SlowTarget]]:
    proxies: list[ThrottlingProxy] = []

    def make(rate: int) -> SlowTarget:
        proxy = ThrottlingProxy(sshd.port, rate)
        proxies.append(proxy)
        known = tmp_path / f"known_hosts-{proxy.port}"
        known.write_text(sshd.known_hosts_line(proxy.port))
        return SlowTarget(proxy, known)

    yield make
    for proxy in proxies:
        proxy.close()


@pytest.fixture
def big_member(pool_factory: Callable[[], Pool]) -> Pool:
    """One member, `erin`, with about 24 MB of incompressible data: a stream that takes a while."""
    pool = pool_factory()
    dataset = create_member(pool.name, "erin")
    write_member_data(pool.mountpoint / "elabfs-erin", 7, 12)
    snapshot(dataset, SNAP)
    return pool


@pytest.fixture
def small_disk(sftp_dir: Path) -> Iterator[Path]:
    """The SFTP user's archive directory on a 64 MiB tmpfs of its own."""
    user = ensure_test_user()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(sftp_dir)], check=True)
    os.chown(sftp_dir, user.pw_uid, user.pw_gid)
    try:
        yield sftp_dir
    finally:
        subprocess.run(["umount", "-l", str(sftp_dir)], check=False)
