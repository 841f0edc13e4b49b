"""An SFTP session carried by an OpenSSH client process instead of paramiko's transport.

`ssh -s host sftp` asks the server for its SFTP subsystem, exactly what
paramiko asks for (no remote command, so a chrooted `internal-sftp` account
works). Encryption then runs in OpenSSH's C code in a process of its own, off
this process's GIL; paramiko's SFTP client speaks the protocol over a socket
pair to it. Host keys are checked by OpenSSH against the same known_hosts file
(`StrictHostKeyChecking=yes`: unknown and changed keys are refused).
"""

from __future__ import annotations

import re
import select
import shutil
import socket
import subprocess
import threading
import time
from collections import deque

from zfs_offsite.errors import ConfigError, HostKeyError, PermanentError, TransientError
from zfs_offsite.ssh import PREFERRED_CIPHERS, SshEndpoint, known_hosts_file

_VERSION = re.compile(r"remote software version (\S+)")


def available() -> bool:
    return shutil.which("ssh") is not None


def ssh_argv(endpoint: SshEndpoint) -> list[str]:
    """The OpenSSH client command line: batch mode, pinned host keys, our key only."""
    if endpoint.key_file is None:
        raise ConfigError("ssh key_file is not set: name the private key to log in with")
    return [
        "ssh",
        "-F",
        "/dev/null",  # no user or system ssh_config: the same behaviour as the paramiko client
        "-v",  # the server's version line tells us its SFTP limits
        "-s",
        "-x",
        "-a",
        "-T",
        "-i",
        str(endpoint.key_file),
        "-p",
        str(endpoint.port),
        "-l",
        endpoint.user,
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts_file(endpoint)}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        f"ConnectTimeout={max(1, round(endpoint.timeout))}",
        "-o",
        "ServerAliveInterval=15",
        "-o",
        f"ServerAliveCountMax={max(2, round(endpoint.timeout / 15) + 1)}",
        "-o",
        "Ciphers=" + ",".join(PREFERRED_CIPHERS),
        "-o",
        "ClearAllForwardings=yes",
        "--",
        endpoint.host,
        "sftp",
    ]


class OpenSshChannel:
    """The socket-like object paramiko's SFTPClient reads and writes."""

    def __init__(self, endpoint: SshEndpoint) -> None:
        self.endpoint = endpoint
        ours, theirs = socket.socketpair()
        try:
            self._proc = subprocess.Popen(
                ssh_argv(endpoint), stdin=theirs, stdout=theirs, stderr=subprocess.PIPE
            )
        except OSError as exc:
            ours.close()
            raise ConfigError(f"cannot run the OpenSSH client `ssh`: {exc}") from exc
        finally:
            theirs.close()
        self._sock = ours
        self._sock.settimeout(endpoint.timeout)
        self._stderr: deque[str] = deque(maxlen=400)
        assert self._proc.stderr is not None
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()

    def _read_stderr(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            self._stderr.append(line.decode(errors="replace").rstrip())

    @property
    def server_version(self) -> str:
        for line in list(self._stderr):
            if match := _VERSION.search(line):
                return match.group(1)
        return ""

    def failure(self) -> Exception:
        """Why the session ended before SFTP started: a typed error from ssh's own words."""
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.close()
        time.sleep(0.05)  # let the stderr thread take the last lines
        said = [line for line in self._stderr if not line.startswith("debug")]
        text = " / ".join(said[-3:]) or f"ssh exited {self._proc.returncode}"
        name = self.endpoint.known_hosts_name
        where = known_hosts_file(self.endpoint)
        if "IDENTIFICATION HAS CHANGED" in text or ("key for" in text and "has changed" in text):
            return HostKeyError(
                f"host key of {name} differs from the one in {where}: refusing to connect; "
                "if the server was really re-keyed, replace its line in known_hosts"
            )
        if "Host key verification failed" in text or "host key is known" in text:
            return HostKeyError(
                f"host key of {name} is not in {where}: refusing to connect; add it with "
                f"`ssh-keyscan -p {self.endpoint.port} {self.endpoint.host} >> {where}` "
                "after checking it"
            )
        if "Permission denied" in text:
            return PermanentError(
                f"ssh login as {self.endpoint.user}@{self.endpoint.host} refused: check "
                "key_file and the server's authorized_keys"
            )
        return TransientError(f"ssh to {self.endpoint.host}:{self.endpoint.port} failed: {text}")

    # What paramiko's SFTP client calls.
    def send(self, data: bytes) -> int:
        return self._sock.send(data)

    def recv(self, size: int) -> bytes:
        return self._sock.recv(size)

    def recv_ready(self) -> bool:
        return bool(select.select([self._sock], [], [], 0)[0])

    def settimeout(self, timeout: float | None) -> None:
        self._sock.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self._sock.gettimeout()

    def setblocking(self, blocking: bool) -> None:
        self._sock.setblocking(blocking)

    def get_name(self) -> str:
        return "openssh"

    def close(self) -> None:
        self._sock.close()
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
