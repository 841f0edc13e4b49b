"""Fault tests: real zfs-fuse, the private sshd, real processes, a slow or full backup server."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.proxy import ThrottlingProxy
from tests.support.services import Pool, SshServer, ensure_test_user
from tests.support.zfsdata import create_member, snapshot, write_member_data

SNAP = "auto-20190806.0200-1w"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class SlowTarget:
    """The sshd behind a throttling proxy, with a known_hosts file for the proxy's port."""

    proxy: ThrottlingProxy
    known_hosts: Path

    def env(self, sshd: SshServer, pool: Pool, archive: Path) -> dict[str, str]:
        return {
            "ZFS_OFFSITE_SOURCE__POOL": pool.name,
            "ZFS_OFFSITE_TARGET__URL": f"sftp://{sshd.user}@127.0.0.1:{self.proxy.port}{archive}",
            "ZFS_OFFSITE_TARGET__KEY_FILE": str(sshd.client_key),
            "ZFS_OFFSITE_TARGET__KNOWN_HOSTS": str(self.known_hosts),
            "ZFS_OFFSITE_TARGET__TIMEOUT": "20",
        }


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


def stored_files(archive: Path) -> list[Path]:
    """Files under a final name: not partial files, not the tool's lock."""
    return sorted(
        p
        for p in archive.rglob("*")
        if p.is_file() and ".partial" not in p.name and not p.name.startswith(".zfs-offsite")
    )


def leftovers(archive: Path) -> list[str]:
    """Partial files and locks: what an interrupted or failed run must not leave behind."""
    return sorted(
        p.name
        for p in archive.rglob("*")
        if p.is_file() and (".partial" in p.name or p.name.startswith(".zfs-offsite"))
    )


def sha256sum_check(archive: Path) -> None:
    """`sha256sum -c` of every stored file, as a user would check the archive."""
    sums = sorted(archive.rglob("*.sha256"))
    assert sums, "no .sha256 files in the archive"
    for path in sums:
        done = subprocess.run(
            ["sha256sum", "-c", path.name], cwd=path.parent, capture_output=True, text=True
        )
        assert done.returncode == 0, f"sha256sum -c {path.name}: {done.stdout}{done.stderr}"


def python_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZFS_OFFSITE_")}
    env["PYTHONPATH"] = str(ROOT)
    return env | extra
