"""An SFTP session carried by an OpenSSH client process instead of paramiko's transport.

`ssh -s host sftp` asks the server for its SFTP subsystem, exactly what
paramiko asks for (no remote command, so a chrooted `internal-sftp` account
works). Encryption then runs in OpenSSH's C code in a process of its own, off
this process's GIL; paramiko's SFTP client speaks the protocol over a socket
pair to it. Host keys are checked by OpenSSH against the same known_hosts file
(`StrictHostKeyChecking=yes`: unknown and changed keys are refused).

A key passphrase is handed to ssh by an askpass helper that reads it from
ssh's environment. Errors are the ones `ssh.py` builds for paramiko, found in
ssh's stderr.
"""

from __future__ import annotations

import atexit
import os
import re
import select
import shutil
import socket
import subprocess
import tempfile
import threading
from collections import deque
from pathlib import Path

from zfs_offsite.errors import ConfigError
from zfs_offsite.transport import ssh
from zfs_offsite.transport.ssh import PREFERRED_CIPHERS, SshEndpoint, check_key, known_hosts_file

_VERSION = re.compile(r"remote software version (\S+)")
_HOST_KEY = re.compile(r"Server host key: (\S+) (\S+)")
_CONNECT = re.compile(r"connect to host \S+ port \d+: (.+?)\.?$")
_RESOLVE = re.compile(r"Could not resolve hostname \S+: (.+?)\.?$")
# Lines ssh prints that never explain a failure (-v adds its version banner).
_NOISE = re.compile(r"^(debug\d|OpenSSH_|Authenticated to |Transferred: |Bytes per second|@@@)")

# The key passphrase reaches the askpass helper in this environment variable of
# the ssh process: never in argv (visible to every user) and never in a file.
PASSPHRASE_ENV = "_ZFS_OFFSITE_ASKPASS"
SOCKET_BUFFER = 1024 * 1024  # each end of the socket to `ssh` (4 MiB measured no better)
_ASKPASS_SCRIPT = f"""#!/bin/sh
# zfs-offsite: OpenSSH's askpass program; prints the key passphrase ssh passed down.
printf '%s\\n' "${PASSPHRASE_ENV}"
"""
_askpass_lock = threading.Lock()
_askpass: Path | None = None


def available() -> bool:
    return shutil.which("ssh") is not None


def command_argv(endpoint: SshEndpoint, *, tty: bool = False) -> list[str]:
    """The `ssh` a person types to run one command on the endpoint, before the command.

    For printed instructions (`restore --to-dir` in pull mode): the configured key
    and known_hosts only, unknown host keys refused, short enough to read.
    """
    if endpoint.key_file is None:
        raise ssh.key_file_unset(endpoint)
    known_hosts = ssh.known_hosts_path(endpoint)
    return [
        "ssh",
        *(["-t"] if tty else []),
        "-i",
        str(endpoint.key_file),
        "-p",
        str(endpoint.port),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        f"{endpoint.user}@{endpoint.host}",
    ]


def ssh_argv(endpoint: SshEndpoint, *, askpass: bool = False) -> list[str]:
    """The OpenSSH client command line: pinned host keys, our key only, no prompt.

    With `askpass` ssh may ask for the key passphrase, and only for that: the
    askpass program answers it, password and keyboard-interactive logins are off
    and unknown host keys are refused without a question.
    """
    if endpoint.key_file is None:
        raise ssh.key_file_unset(endpoint)
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
        f"BatchMode={'no' if askpass else 'yes'}",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "IdentityAgent=none",  # paramiko uses no agent either
        "-o",
        "PreferredAuthentications=publickey",
        "-o",
        "PasswordAuthentication=no",
        "-o",
        "KbdInteractiveAuthentication=no",
        "-o",
        "NumberOfPasswordPrompts=1",
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


def _askpass_works(helper: Path) -> bool:
    try:
        done = subprocess.run(
            [str(helper)], env={PASSPHRASE_ENV: "probe"}, capture_output=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.stdout == b"probe\n"


def askpass_helper() -> Path:
    """OpenSSH's askpass program, written once per process into a private directory.

    It holds no secret (the passphrase comes through ssh's environment). The
    directory must allow executing it: /tmp is often mounted noexec on a NAS,
    so the runtime and cache directories are tried next.
    """
    global _askpass
    with _askpass_lock:
        if _askpass is not None and _askpass.exists():
            return _askpass
        bases: list[str | Path | None] = [
            tempfile.gettempdir(),
            os.environ.get("XDG_RUNTIME_DIR"),
            Path.home() / ".cache",
        ]
        for base in (b for b in bases if b):
            try:
                directory = Path(tempfile.mkdtemp(prefix="zfs-offsite-askpass-", dir=base))
            except OSError:
                continue
            helper = directory / "askpass"
            helper.write_text(_ASKPASS_SCRIPT)
            helper.chmod(0o700)
            if _askpass_works(helper):
                atexit.register(shutil.rmtree, directory, True)
                _askpass = helper
                return helper
            shutil.rmtree(directory, ignore_errors=True)
        raise ConfigError(
            "setting target.client: the OpenSSH client needs an askpass helper for "
            "key_passphrase and none of the temporary directories lets it run (noexec?): "
            "set target.client = paramiko"
        )


def explain(endpoint: SshEndpoint, lines: list[str], returncode: int | None) -> Exception:
    """ssh's stderr (with -v) as the typed one-line error the paramiko client raises too."""
    said = [line for line in lines if line.strip() and not _NOISE.match(line)]
    text = "\n".join(said)
    where = ssh.known_hosts_path(endpoint)
    if "IDENTIFICATION HAS CHANGED" in text or "has changed and you have requested" in text:
        found = (_HOST_KEY.search(line) for line in lines)
        offered = next((f"{m[1]} {m[2]}" for m in found if m), "an unknown key")
        return ssh.host_key_changed(endpoint, where, offered)
    if "Host key verification failed" in text or "host key is known for" in text:
        return ssh.host_key_unknown(endpoint, where)
    if "ssh_askpass: exec" in text:
        return ConfigError(
            "setting target.client: ssh could not run its askpass helper for the key "
            "passphrase: set target.client = paramiko"
        )
    if "Permission denied (" in text or "Too many authentication failures" in text:
        return ssh.key_refused(endpoint)
    for line in said:
        if match := _RESOLVE.search(line):
            return ssh.host_not_found(endpoint, match[1])
        if match := _CONNECT.search(line):
            return ssh.unreachable(endpoint, match[1])
    if "subsystem request failed" in text:
        return ssh.sftp_refused(endpoint)
    if "during banner exchange" in text:
        return ssh.no_handshake(endpoint, closed=False)
    if "kex_exchange_identification" in text:
        return ssh.no_handshake(endpoint, closed=True)
    return ssh.ssh_failed(endpoint, said[-1] if said else f"ssh exited {returncode}")


class OpenSshChannel:
    """The socket-like object paramiko's SFTPClient reads and writes."""

    def __init__(self, endpoint: SshEndpoint) -> None:
        self.endpoint = endpoint
        askpass = check_key(endpoint)  # key problems get their own words, before ssh runs
        argv = ssh_argv(endpoint, askpass=askpass)
        env = None
        if askpass:
            assert endpoint.passphrase is not None
            env = os.environ | {
                "SSH_ASKPASS": str(askpass_helper()),
                "SSH_ASKPASS_REQUIRE": "force",  # the helper, never the terminal
                PASSPHRASE_ENV: endpoint.passphrase,
            }
        ours, theirs = socket.socketpair()
        for end in (ours, theirs):
            # Room for more than one SSH channel packet each way: with the default buffer
            # `ssh` wakes per small write into it. Restore harness (side by side, 3 rounds):
            # 1.2x the MB/s, `ssh` at 0.6x its CPU; the kernel caps it at net.core.wmem_max.
            for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
                end.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
        try:
            # A session of its own: a stop signal sent to the whole process group (a
            # terminal's Ctrl-C; Prefect's worker SIGTERMs the flow run's group on Cancel)
            # must not kill the connection before the stream has removed its partial file
            # and lock. The stop switch ends the stream; EOF on the socket ends ssh.
            self._proc = subprocess.Popen(
                argv,
                stdin=theirs.fileno(),
                stdout=theirs.fileno(),
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,
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
        self._drain.join(timeout=2)  # the last lines explain the failure
        return explain(self.endpoint, list(self._stderr), self._proc.returncode)

    # What paramiko's SFTP client calls.
    def send(self, data: bytes) -> int:
        return self._sock.send(data)

    def recv(self, size: int) -> bytes:
        return self._sock.recv(size)

    def recv_into(self, buffer: memoryview) -> int:
        return self._sock.recv_into(buffer)

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
