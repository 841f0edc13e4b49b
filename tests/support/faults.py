"""What the fault tests look at: the archive's stored files and leftovers, a throttled target."""

from __future__ import annotations

import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.operations import descendants
from tests.support.proxy import ThrottlingProxy
from tests.support.services import Pool, SshServer
from zfs_offsite.archive.identity import MARKER_NAME

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


def stored_files(archive: Path) -> list[Path]:
    """Files under a final name: not partial files, not the tool's lock."""
    return sorted(
        p
        for p in archive.rglob("*")
        if p.is_file() and ".partial" not in p.name and not p.name.startswith(".zfs-offsite")
    )


def leftovers(archive: Path) -> list[str]:
    """Partial files and locks: what an interrupted or failed run must not leave behind
    (the archive's marker belongs there)."""
    return sorted(
        p.name
        for p in archive.rglob("*")
        if p.is_file()
        and (".partial" in p.name or p.name.startswith(".zfs-offsite"))
        and p.name != MARKER_NAME
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


def sftp_sessions(sshd: SshServer) -> list[int]:
    """The test sshd's processes serving the SFTP user (internal-sftp runs in them)."""
    uid = pwd.getpwnam(sshd.user).pw_uid
    owned = []
    for pid in descendants(sshd.process.pid):
        try:
            if os.stat(f"/proc/{pid}").st_uid == uid:
                owned.append(pid)
        except FileNotFoundError:
            continue
    return owned


def zfs_sends(pool: str) -> list[str]:
    """Command lines of the `zfs send` processes of `pool` still running."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv if a]
        ours = any(w.startswith(f"{pool}/") for w in words)
        if len(words) > 1 and words[0].endswith("zfs") and "send" in words and ours:
            try:
                state = cmdline.with_name("stat").read_text().split()[2:3]
            except OSError:
                continue  # it ended as we looked
            if state != ["Z"]:  # a zombie has ended; its parent just has not reaped it
                found.append(" ".join(words))
    return found
