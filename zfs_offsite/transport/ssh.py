"""SSH connections with a verified host key and a fast cipher.

One place opens every SSH transport (SFTP store and pull-mode runner) so the
host key check cannot be skipped by accident. It also holds the one set of
SSH error messages: the OpenSSH client (`openssh.py`) raises the same words,
so a failure reads the same whichever client carried the session.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

import paramiko
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from zfs_offsite.errors import ConfigError, HostKeyError, PermanentError, TransientError
from zfs_offsite.file_kind import path_kind

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
# paramiko's transport thread logs every failure as a traceback at ERROR, on
# stderr when nothing configured logging. The caller gets the same failure as a
# typed one-line error, so these records are kept to DEBUG: dropped unless the
# logger is enabled for DEBUG (-v), as a DEBUG record would be. Its SFTP client
# logs below the channel (`.sftp`), where the parent's filter does not apply.
TRANSPORT_LOG = "zfs_offsite.transport.ssh.paramiko"


class _AsDebug(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


for _channel in (TRANSPORT_LOG, f"{TRANSPORT_LOG}.sftp"):
    logging.getLogger(_channel).addFilter(_AsDebug())


@dataclass(frozen=True)
class SshEndpoint:
    """Where and how to log in; the passphrase never appears in repr or logs.

    `setting` is the settings section the credentials came from (`target` or
    `source`), so an error can name the setting to fix.
    """

    host: str
    port: int
    user: str
    key_file: Path | None
    known_hosts: Path | None
    passphrase: str | None = None
    timeout: float = 30.0
    setting: str = "target"

    def __repr__(self) -> str:
        return f"SshEndpoint({self.user}@{self.host}:{self.port})"

    @property
    def known_hosts_name(self) -> str:
        """The key under which OpenSSH stores this host in known_hosts."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


# --- The messages, one builder per failure; both clients raise these. -----------------


def _key_error(endpoint: SshEndpoint, problem: str) -> ConfigError:
    return ConfigError(f"ssh key file {endpoint.key_file} {problem}")


def _passphrase_env(endpoint: SshEndpoint) -> str:
    return f"ZFS_OFFSITE_{endpoint.setting.upper()}__KEY_PASSPHRASE"


def key_file_unset(endpoint: SshEndpoint) -> ConfigError:
    return ConfigError(
        f"setting {endpoint.setting}.key_file is not set: name the private key that logs "
        f"in to {endpoint.user}@{endpoint.address}"
    )


def key_needs_passphrase(endpoint: SshEndpoint) -> ConfigError:
    return _key_error(
        endpoint,
        f"is protected by a passphrase: set {endpoint.setting}.key_passphrase "
        f"(environment variable {_passphrase_env(endpoint)})",
    )


def wrong_passphrase(endpoint: SshEndpoint) -> ConfigError:
    return _key_error(
        endpoint,
        f"does not open with the passphrase in {endpoint.setting}.key_passphrase: "
        "the passphrase is wrong, fix the setting",
    )


def key_refused(endpoint: SshEndpoint) -> PermanentError:
    return PermanentError(
        f"ssh key file {endpoint.key_file} was refused by {endpoint.user}@{endpoint.address}: "
        f"add its public key to the authorized_keys of {endpoint.user} on {endpoint.host}, "
        f"or fix the user in {'source.ssh_url' if endpoint.setting == 'source' else 'target.url'}"
    )


def host_key_unknown(endpoint: SshEndpoint, known_hosts: Path) -> HostKeyError:
    return HostKeyError(
        f"host key of {endpoint.known_hosts_name} is not in {known_hosts}: refusing to "
        f"connect; add it with `ssh-keyscan -p {endpoint.port} {endpoint.host} >> "
        f"{known_hosts}` after checking it"
    )


def host_key_changed(endpoint: SshEndpoint, known_hosts: Path, offered: str) -> HostKeyError:
    return HostKeyError(
        f"host key of {endpoint.known_hosts_name} differs from the one in {known_hosts} "
        f"(offered {offered}): refusing to connect; if the server was really re-keyed, "
        "replace its line in known_hosts"
    )


def unreachable(endpoint: SshEndpoint, reason: str) -> TransientError:
    return TransientError(
        f"cannot reach {endpoint.address}: {reason}: check the host name, the port "
        "and that sshd runs there"
    )


def host_not_found(endpoint: SshEndpoint, reason: str) -> TransientError:
    return TransientError(
        f"cannot reach {endpoint.address}: host name {endpoint.host} not resolved ({reason}): "
        "check the host name and DNS"
    )


def no_handshake(endpoint: SshEndpoint, closed: bool) -> TransientError:
    what = (
        "the server closed the connection before the SSH handshake"
        if closed
        else f"no SSH handshake within {endpoint.timeout:g}s"
    )
    return TransientError(
        f"ssh to {endpoint.address} failed: {what}: check that the port is sshd's"
    )


def sftp_refused(endpoint: SshEndpoint) -> PermanentError:
    return PermanentError(
        f"ssh to {endpoint.address}: the server refused the SFTP subsystem: enable "
        "`Subsystem sftp internal-sftp` in its sshd_config"
    )


def ssh_failed(endpoint: SshEndpoint, detail: str) -> TransientError:
    return TransientError(f"ssh to {endpoint.address} failed: {detail}")


def unreachable_from_oserror(endpoint: SshEndpoint, exc: OSError) -> TransientError:
    """A failed TCP connect in the words OpenSSH prints (both come from strerror)."""
    if isinstance(exc, socket.gaierror):
        return host_not_found(endpoint, exc.strerror or str(exc))
    code = exc.errno if exc.errno is not None else errno.ETIMEDOUT  # socket.timeout has none
    return unreachable(endpoint, os.strerror(code))


# --- Files: known_hosts and the private key. ------------------------------------------


def known_hosts_path(endpoint: SshEndpoint) -> Path:
    """The known_hosts file for this endpoint: its setting, else OpenSSH's default."""
    return endpoint.known_hosts or Path.home() / ".ssh" / "known_hosts"


def known_hosts_file(endpoint: SshEndpoint) -> Path:
    """`known_hosts_path`, which must exist: a missing one is a ConfigError with the fix."""
    path = known_hosts_path(endpoint)
    scan = f"`ssh-keyscan -p {endpoint.port} {endpoint.host} > {path}` and check the key"
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(
            f"known_hosts file {path} does not exist: create it with {scan}"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"known_hosts file {path} cannot be read ({exc.strerror}): fix its access"
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(
            f"known_hosts file {path} is {path_kind(info.st_mode)}, not a file of host keys: "
            f"set {endpoint.setting}.known_hosts to a file and fill it with {scan}"
        )
    return path


def _read_known_hosts(endpoint: SshEndpoint) -> tuple[Path, paramiko.HostKeys]:
    path = known_hosts_file(endpoint)
    try:
        return path, paramiko.HostKeys(str(path))
    except (OSError, paramiko.SSHException) as exc:
        raise ConfigError(f"known_hosts file {path} cannot be read: {exc}") from exc


def verify_host_key(
    endpoint: SshEndpoint, known: paramiko.HostKeys, path: Path, server_key: paramiko.PKey
) -> None:
    """Refuse a server whose key is not in known_hosts or differs from it.

    Like OpenSSH: a key type known_hosts holds nothing for counts as unknown.
    """
    entries = known.lookup(endpoint.known_hosts_name)
    stored = entries.get(server_key.get_name()) if entries is not None else None
    if stored is None:
        raise host_key_unknown(endpoint, path)
    if stored != server_key:
        raise host_key_changed(endpoint, path, f"{server_key.get_name()} {server_key.fingerprint}")


def _key_bytes(endpoint: SshEndpoint) -> bytes:
    """The key file's bytes, after the checks OpenSSH makes of the file itself."""
    path = endpoint.key_file
    if path is None:
        raise key_file_unset(endpoint)
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        raise _key_error(
            endpoint, f"does not exist: fix {endpoint.setting}.key_file or create the key"
        ) from exc
    except OSError as exc:
        raise _key_error(endpoint, f"cannot be read ({exc.strerror}): fix its access") from exc
    if not stat.S_ISREG(info.st_mode):
        raise _key_error(
            endpoint,
            f"is {path_kind(info.st_mode)}, not a file: set {endpoint.setting}.key_file to "
            "the private key file",
        )
    # OpenSSH ignores its own user's key when others may read it; say so up front.
    if info.st_uid == os.getuid() and info.st_mode & 0o077:
        raise _key_error(
            endpoint,
            f"is accessible by others (mode {stat.S_IMODE(info.st_mode):04o}), which OpenSSH "
            f"refuses: chmod 600 {path}",
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _key_error(endpoint, f"cannot be read ({exc.strerror}): fix its access") from exc


def _decode_key(data: bytes, password: bytes | None) -> object:
    if b"-----BEGIN OPENSSH PRIVATE KEY-----" in data:
        return serialization.load_ssh_private_key(data, password)
    return serialization.load_pem_private_key(data, password)


def _key_is_encrypted(endpoint: SshEndpoint, data: bytes) -> bool:
    """Whether the key needs a passphrase; any other problem with it is a ConfigError."""
    try:
        _decode_key(data, None)
    except TypeError:  # cryptography's "password-protected, but no password given"
        if endpoint.passphrase is None:
            raise key_needs_passphrase(endpoint) from None
        return True
    except UnsupportedAlgorithm as exc:
        raise _key_error(endpoint, "has a key type this tool cannot use: use ed25519") from exc
    except ValueError as exc:
        what = "a public key" if data.lstrip().startswith(b"ssh-") else "not a private key"
        raise _key_error(
            endpoint,
            f"is {what}: set {endpoint.setting}.key_file to the private key "
            "(OpenSSH or PEM format)",
        ) from exc
    return False


def check_key(endpoint: SshEndpoint) -> bool:
    """Check the key file as OpenSSH will use it; True when it needs the passphrase.

    Run before the OpenSSH client starts, so a key problem gets its own message
    instead of ssh's "Permission denied", and a wrong passphrase is never offered.
    """
    data = _key_bytes(endpoint)
    if not _key_is_encrypted(endpoint, data):
        return False  # a passphrase set for a plain key is not needed: OpenSSH never asks
    assert endpoint.passphrase is not None
    try:
        _decode_key(data, endpoint.passphrase.encode())
    except (ValueError, TypeError):
        raise wrong_passphrase(endpoint) from None
    return True


def load_key(endpoint: SshEndpoint) -> paramiko.PKey:
    """The private key for paramiko, after the same checks as `check_key`."""
    data = _key_bytes(endpoint)
    encrypted = _key_is_encrypted(endpoint, data)
    assert endpoint.key_file is not None
    # paramiko hands the passphrase to `cryptography`, which takes bytes only (the stub
    # types it str: hence the ignore).
    password = endpoint.passphrase.encode() if encrypted and endpoint.passphrase else None
    try:
        return paramiko.PKey.from_path(endpoint.key_file, password)  # type: ignore[arg-type]
    except (ValueError, TypeError, paramiko.SSHException) as exc:
        if encrypted:
            raise wrong_passphrase(endpoint) from None
        raise _key_error(endpoint, "cannot be loaded: use an ed25519 key") from exc


# --- The paramiko transport. -------------------------------------------------------------


def _prefer_known_key_types(
    transport: paramiko.Transport, known: paramiko.HostKeys, name: str
) -> None:
    """Ask first for a host key type known_hosts holds, as OpenSSH does."""
    held = set((known.lookup(name) or {}).keys())
    options = transport.get_security_options()
    ours = list(options.key_types)
    first = [k for k in ours if ("ssh-rsa" if k.startswith("rsa-sha2-") else k) in held]
    options.key_types = first + [k for k in ours if k not in first]


def connect(endpoint: SshEndpoint) -> paramiko.Transport:
    """Open an authenticated transport after checking the key file and the host key."""
    key = load_key(endpoint)
    path, known = _read_known_hosts(endpoint)
    try:
        sock = socket.create_connection((endpoint.host, endpoint.port), timeout=endpoint.timeout)
    except OSError as exc:
        raise unreachable_from_oserror(endpoint, exc) from exc
    sock.settimeout(endpoint.timeout)
    transport = paramiko.Transport(
        sock, default_window_size=WINDOW_SIZE, default_max_packet_size=MAX_PACKET_SIZE
    )
    transport.set_log_channel(TRANSPORT_LOG)
    transport.banner_timeout = endpoint.timeout
    offered = [c for c in PREFERRED_CIPHERS if c in transport.get_security_options().ciphers]
    transport.get_security_options().ciphers = offered + [
        c for c in transport.get_security_options().ciphers if c not in offered
    ]
    _prefer_known_key_types(transport, known, endpoint.known_hosts_name)
    try:
        try:
            transport.start_client(timeout=endpoint.timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            closed = isinstance(exc.__context__, EOFError | ConnectionResetError)
            if closed or "banner" in str(exc):
                raise no_handshake(endpoint, closed) from exc
            raise ssh_failed(endpoint, str(exc) or type(exc).__name__) from exc
        if transport.host_key is None:  # start_client returns quietly on its timeout
            raise no_handshake(endpoint, closed=False)
        verify_host_key(endpoint, known, path, transport.get_remote_server_key())
        transport.auth_publickey(endpoint.user, key)
    except paramiko.AuthenticationException as exc:
        transport.close()
        raise key_refused(endpoint) from exc
    except (paramiko.SSHException, OSError, EOFError) as exc:
        transport.close()
        raise ssh_failed(endpoint, str(exc) or type(exc).__name__) from exc
    except BaseException:
        transport.close()
        raise
    transport.set_keepalive(15)
    return transport
