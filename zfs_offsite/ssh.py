"""SSH connections with a verified host key and a fast cipher.

One place opens every SSH transport (SFTP store and pull-mode runner) so the
host key check cannot be skipped by accident.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

import paramiko

from zfs_offsite.errors import ConfigError, HostKeyError, PermanentError, TransientError

# aes-gcm needs no separate MAC pass: measured close to OpenSSH's throughput.
PREFERRED_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
)
# Our receive window: large enough that the server never waits for a window
# adjust while two read windows are in flight (measured 273 -> 327 MB/s going
# from 8 to 32 MiB). Memory stays bounded by the reads we request.
WINDOW_SIZE = 32 * 1024 * 1024
# The largest packet we accept: fewer, larger packets cut paramiko's per-packet
# Python work on downloads (servers send at most what they choose, e.g. 32 KiB).
MAX_PACKET_SIZE = 256 * 1024 - 1024


@dataclass(frozen=True)
class SshEndpoint:
    """Where and how to log in; the passphrase never appears in repr or logs."""

    host: str
    port: int
    user: str
    key_file: Path | None
    known_hosts: Path | None
    passphrase: str | None = None
    timeout: float = 30.0

    def __repr__(self) -> str:
        return f"SshEndpoint({self.user}@{self.host}:{self.port})"

    @property
    def known_hosts_name(self) -> str:
        """The key under which OpenSSH stores this host in known_hosts."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


def known_hosts_file(endpoint: SshEndpoint) -> Path:
    path = endpoint.known_hosts or Path.home() / ".ssh" / "known_hosts"
    if not path.is_file():
        raise ConfigError(
            f"known_hosts file {path} does not exist: create it with "
            f"`ssh-keyscan -p {endpoint.port} {endpoint.host} > {path}` and check the key"
        )
    return path


def verify_host_key(endpoint: SshEndpoint, server_key: paramiko.PKey) -> None:
    """Refuse a server whose key is not in known_hosts or differs from it."""
    path = known_hosts_file(endpoint)
    try:
        known = paramiko.HostKeys(str(path))
    except (OSError, paramiko.SSHException) as exc:
        raise ConfigError(f"known_hosts file {path} cannot be read: {exc}") from exc
    name = endpoint.known_hosts_name
    entries = known.lookup(name)
    if not entries:
        raise HostKeyError(
            f"host key of {name} is not in {path}: refusing to connect; add it with "
            f"`ssh-keyscan -p {endpoint.port} {endpoint.host} >> {path}` after checking it"
        )
    stored = entries.get(server_key.get_name())
    if stored is None or stored != server_key:
        raise HostKeyError(
            f"host key of {name} differs from the one in {path} "
            f"(offered {server_key.get_name()} {server_key.fingerprint}): refusing to connect; "
            "if the server was really re-keyed, replace its line in known_hosts"
        )


def _load_key(endpoint: SshEndpoint) -> paramiko.PKey:
    if endpoint.key_file is None:
        raise ConfigError("ssh key_file is not set: name the private key to log in with")
    try:
        return paramiko.PKey.from_path(endpoint.key_file, endpoint.passphrase)
    except FileNotFoundError as exc:
        raise ConfigError(f"ssh key_file {endpoint.key_file} does not exist") from exc
    except paramiko.PasswordRequiredException as exc:
        raise ConfigError(
            f"ssh key_file {endpoint.key_file} is encrypted: set its passphrase "
            "(ZFS_OFFSITE_TARGET__KEY_PASSPHRASE)"
        ) from exc
    except (paramiko.SSHException, ValueError) as exc:
        raise ConfigError(f"ssh key_file {endpoint.key_file} cannot be loaded: {exc}") from exc


def connect(endpoint: SshEndpoint) -> paramiko.Transport:
    """Open an authenticated transport after checking the host key."""
    key = _load_key(endpoint)
    try:
        sock = socket.create_connection((endpoint.host, endpoint.port), timeout=endpoint.timeout)
    except OSError as exc:
        raise TransientError(
            f"cannot reach {endpoint.host}:{endpoint.port}: {exc.strerror or exc}"
        ) from exc
    sock.settimeout(endpoint.timeout)
    transport = paramiko.Transport(
        sock, default_window_size=WINDOW_SIZE, default_max_packet_size=MAX_PACKET_SIZE
    )
    offered = [c for c in PREFERRED_CIPHERS if c in transport.get_security_options().ciphers]
    transport.get_security_options().ciphers = offered + [
        c for c in transport.get_security_options().ciphers if c not in offered
    ]
    try:
        transport.start_client(timeout=endpoint.timeout)
        verify_host_key(endpoint, transport.get_remote_server_key())
        transport.auth_publickey(endpoint.user, key)
    except paramiko.AuthenticationException as exc:
        transport.close()
        raise PermanentError(
            f"ssh login as {endpoint.user}@{endpoint.host} refused: check key_file and the "
            "server's authorized_keys"
        ) from exc
    except (paramiko.SSHException, OSError, EOFError) as exc:
        transport.close()
        raise TransientError(f"ssh to {endpoint.host}:{endpoint.port} failed: {exc}") from exc
    except BaseException:
        transport.close()
        raise
    transport.set_keepalive(15)
    return transport
