"""What every benchmark stands on: a zfs-fuse pool, a private sshd and an archive dir."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.services import Pool, SshServer, create_pool, ensure_zfs_fuse, start_sshd


@dataclass(frozen=True)
class Loopback:
    work: Path
    sshd: SshServer
    pool: Pool
    archive: Path  # owned by the SFTP test user

    @property
    def sftp_url(self) -> str:
        return f"sftp://{self.sshd.user}@127.0.0.1:{self.sshd.port}{self.archive}"

    def ssh_command(self) -> str:
        """The OpenSSH baseline's `ssh` invocation (same key, host key and cipher as ours)."""
        return (
            f"ssh -i {self.sshd.client_key} -p {self.sshd.port} "
            f"-o UserKnownHostsFile={self.sshd.known_hosts} "
            f"-c aes128-gcm@openssh.com {self.sshd.user}@127.0.0.1"
        )


@contextmanager
def loopback(name: str, pool_mb: int) -> Iterator[Loopback]:
    """Start everything, and tear it all down again however the benchmark ends."""
    ensure_zfs_fuse()
    work = Path(tempfile.mkdtemp(prefix="zfs-offsite-bench-", dir="/var/tmp"))
    work.chmod(0o755)  # sshd reads authorized_keys below it as the test user
    sshd = start_sshd(work / "sshd")
    pool = create_pool(work, "zob", size_mb=max(1024, pool_mb))
    archive = Path(f"/home/{sshd.user}/bench-{name}")
    try:
        shutil.rmtree(archive, ignore_errors=True)
        archive.mkdir()
        subprocess.run(["chown", sshd.user, str(archive)], check=True)
        yield Loopback(work, sshd, pool, archive)
    finally:
        sshd.stop()
        pool.destroy()
        shutil.rmtree(archive, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
