"""Real services for the tests: zfs-fuse, file-backed pools and a private sshd.

Also runnable as `python -m tests.support.services zfs-fuse` so `.ci/run` can
start the ZFS daemon before pytest; the fixtures start whatever is not running.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

TEST_USER = "zfsoffsite-test"
ZFS_FUSE_LOG = Path("/var/tmp/zfs-offsite-zfs-fuse.log")
ZFS_FUSE_PIDFILE = Path("/var/run/zfs-fuse.pid")


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]


def zfs_fuse_ready() -> bool:
    done = subprocess.run(["zpool", "list"], capture_output=True, text=True, check=False)
    return done.returncode == 0


def ensure_zfs_fuse(timeout: float = 30.0) -> None:
    """Start `zfs-fuse --no-daemon` in the background unless it already answers."""
    if shutil.which("zfs-fuse") is None:
        raise RuntimeError("zfs-fuse is not installed: run scripts/setup-system.sh (apt-get)")
    if zfs_fuse_ready():
        return
    if ZFS_FUSE_PIDFILE.exists():
        ZFS_FUSE_PIDFILE.unlink()
    log = ZFS_FUSE_LOG.open("ab")
    subprocess.Popen(["zfs-fuse", "--no-daemon"], stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if zfs_fuse_ready():
            return
        time.sleep(0.2)
    raise RuntimeError(f"zfs-fuse did not start within {timeout}s; see {ZFS_FUSE_LOG}")


@dataclass
class Pool:
    """A file-backed pool; destroyed on `destroy()` so zpool.cache stays clean."""

    name: str
    image: Path

    @property
    def mountpoint(self) -> Path:
        return Path("/") / self.name

    def destroy(self) -> None:
        """Destroy the pool; zfs-fuse may be busy for a moment after a receive, so retry."""
        for _ in range(20):
            done = subprocess.run(
                ["zpool", "destroy", "-f", self.name], capture_output=True, text=True, check=False
            )
            if done.returncode == 0 or "no such pool" in done.stderr:
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"zpool destroy {self.name} failed: {done.stderr.strip()}")
        self.image.unlink(missing_ok=True)


def create_pool(directory: Path, prefix: str = "zot", size_mb: int = 512) -> Pool:
    name = f"{prefix}{secrets.token_hex(3)}"
    image = directory / f"{name}.img"
    with image.open("wb") as handle:
        handle.truncate(size_mb * 1024 * 1024)
    run(["zpool", "create", name, str(image)])
    return Pool(name, image)


def ensure_test_user() -> pwd.struct_passwd:
    """The SFTP login of the tests; `*` (not `!`) so sshd without PAM accepts key login."""
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        run(["useradd", "--create-home", "--shell", "/bin/sh", TEST_USER])
    run(["usermod", "-p", "*", TEST_USER])
    return pwd.getpwnam(TEST_USER)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class SshServer:
    """A private OpenSSH sshd on 127.0.0.1 with its own host key and client key."""

    directory: Path
    port: int
    process: subprocess.Popen[bytes]
    user: str
    client_key: Path
    known_hosts: Path
    host_public_key: str

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def known_hosts_line(self, port: int) -> str:
        return f"[127.0.0.1]:{port} {self.host_public_key}\n"


def start_sshd(directory: Path) -> SshServer:
    """sshd with key-only login for the test user (SFTP) and root (pull-mode zfs)."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(sshd).exists():
        raise RuntimeError("sshd is not installed: run scripts/setup-system.sh (openssh-server)")
    user = ensure_test_user()
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    host_key = directory / "host_ed25519"
    client_key = directory / "client_ed25519"
    for key in (host_key, client_key):
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
    authorized = directory / "authorized_keys"
    shutil.copy(client_key.with_suffix(".pub"), authorized)
    os.chmod(authorized, 0o644)
    port = free_port()
    config = directory / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {host_key}",
                f"PidFile {directory / 'sshd.pid'}",
                f"AuthorizedKeysFile {authorized}",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                f"AllowUsers {user.pw_name} root",
                "StrictModes no",
                "UsePAM no",
                "LogLevel ERROR",
                "Subsystem sftp internal-sftp",
                "",
            ]
        )
    )
    process = subprocess.Popen(
        [sshd, "-D", "-e", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=(directory / "sshd.log").open("wb"),
    )
    wait_for_port(port)
    host_public = " ".join(host_key.with_suffix(".pub").read_text().split()[:2])
    known_hosts = directory / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_public}\n")
    return SshServer(directory, port, process, user.pw_name, client_key, known_hosts, host_public)


if __name__ == "__main__":
    if sys.argv[1:] == ["zfs-fuse"]:
        ensure_zfs_fuse()
        print("zfs-fuse is running")
    else:
        sys.exit("usage: python -m tests.support.services zfs-fuse")
