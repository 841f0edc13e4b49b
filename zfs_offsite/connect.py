"""The one place that turns settings into connections: SSH endpoints, the NAS runner, the store.

`settings` stays a leaf (models and validation only); everything that needs a
transport to exist (an SSH endpoint, the choice of SSH client) is decided here.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from urllib.parse import unquote, urlsplit

from zfs_offsite.archive.names import Kind, classify
from zfs_offsite.remote.s3_retention import FileRole, Wanted
from zfs_offsite.remote.store import Store
from zfs_offsite.settings import Settings, SourceSettings, TargetSettings
from zfs_offsite.transport.openssh import available as openssh_available
from zfs_offsite.transport.ssh import SshEndpoint
from zfs_offsite.zfs.runner import LocalRunner, Runner, SshRunner


def source_endpoint(source: SourceSettings, timeout: float) -> SshEndpoint | None:
    """The NAS to pull from (`source.ssh_url`), or None when zfs runs on this host."""
    if source.ssh_url is None:
        return None
    parts = urlsplit(source.ssh_url)
    return SshEndpoint(
        host=parts.hostname or "",
        port=parts.port or 22,
        user=unquote(parts.username or ""),
        key_file=source.key_file,
        known_hosts=source.known_hosts,
        passphrase=source.key_passphrase.get_secret_value() if source.key_passphrase else None,
        timeout=timeout,
        setting="source",
    )


def target_endpoint(target: TargetSettings) -> SshEndpoint:
    """The backup server's SSH endpoint (an sftp:// target)."""
    url = target.parsed
    return SshEndpoint(
        host=url.host,
        port=url.port,
        user=url.user,
        key_file=target.key_file,
        known_hosts=target.known_hosts,
        passphrase=target.key_passphrase.get_secret_value() if target.key_passphrase else None,
        timeout=target.timeout,
    )


def uses_openssh_client(target: TargetSettings) -> bool:
    """Whether SFTP rides on the `ssh` binary: `client`, with auto meaning 'if installed'."""
    # Both clients take a key passphrase (OpenSSH through an askpass helper).
    if target.client == "auto":
        return openssh_available()
    return target.client == "openssh"


def open_runner(settings: Settings) -> Runner:
    """Local zfs, or the NAS's zfs over SSH in pull mode."""
    endpoint = source_endpoint(settings.source, settings.target.timeout)
    return SshRunner(endpoint) if endpoint else LocalRunner()


def source_host(settings: Settings) -> str:
    endpoint = source_endpoint(settings.source, settings.target.timeout)
    return endpoint.host if endpoint else socket.gethostname()


def host_label(settings: Settings) -> str:
    """The ZFS host's one name in run names, artifact keys and the send limit `zfs-send-<it>`.

    The host whose datasets are backed up: the NAS of `source.ssh_url` in pull
    mode, this host in push mode; its short name (`nas` for nas.lan), or an
    address with `-` for `.` and `:` (`192-168-1-5`). `OFFSITE_HOST`, which names
    the deployments (`nightly-<it>`), must be set to the same (docs/how-to/pull-mode.md);
    in push mode its default, the short host name, already is.
    """
    host = source_host(settings).lower()
    is_address = bool(re.fullmatch(r"[0-9.]+|[0-9a-f:.]*:[0-9a-f:.]*", host))
    short = host if is_address else host.split(".")[0]
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", short)).strip("-")


def backup_role(filename: str) -> FileRole:
    """A backup's data, one of its sidecars, or another file (S3 retention, storage class)."""
    kind = classify(filename)[0]
    if kind is Kind.BACKUP:
        return "data"
    return "sidecar" if kind in (Kind.CHECKSUM, Kind.METADATA) else "other"


def open_store(target: TargetSettings) -> Store:
    """Connect to the configured target (SFTP connections verify the host key)."""
    from zfs_offsite.remote.local import LocalStore
    from zfs_offsite.remote.sftp import SftpStore

    url = target.parsed
    if url.scheme == "file":
        return LocalStore(Path(url.path), timeout=target.timeout, umask=target.umask)
    if url.scheme == "s3":
        from zfs_offsite.remote.s3 import S3Store
        from zfs_offsite.remote.s3_credentials import keys_from_block

        s3 = target.s3
        keys = keys_from_block(s3.credentials_block) if s3.credentials_block else None
        bucket = S3Store(
            url.host,
            url.path,
            endpoint_url=s3.endpoint_url,
            region=s3.region,
            addressing_style=s3.addressing_style,
            profile=s3.profile,
            keys=keys,
            timeout=target.timeout,
        )
        bucket.single_writer = s3.single_writer
        bucket.object_lock = Wanted(
            s3.object_lock_days, s3.object_lock_mode, s3.storage_class, role=backup_role
        )
        return bucket
    return SftpStore(
        target_endpoint(target),
        url.path,
        openssh_client=uses_openssh_client(target),
        umask=target.umask,
    )
