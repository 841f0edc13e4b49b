"""The one place that turns settings into connections: the NAS runner, the store."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zfs_offsite.settings import TargetSettings

from zfs_offsite.remote.store import Store
from zfs_offsite.settings import Settings
from zfs_offsite.zfs.runner import LocalRunner, Runner, SshRunner


def open_runner(settings: Settings) -> Runner:
    """Local zfs, or the NAS's zfs over SSH in pull mode."""
    endpoint = settings.source.endpoint(settings.target.timeout)
    return SshRunner(endpoint) if endpoint else LocalRunner()


def source_host(settings: Settings) -> str:
    endpoint = settings.source.endpoint(settings.target.timeout)
    return endpoint.host if endpoint else socket.gethostname()


def open_store(target: TargetSettings) -> Store:
    """Connect to the configured target (SFTP connections verify the host key)."""
    from zfs_offsite.remote.local import LocalStore
    from zfs_offsite.remote.sftp import SftpStore

    url = target.parsed
    if url.scheme == "file":
        return LocalStore(Path(url.path))
    return SftpStore(target.endpoint(), url.path, openssh_client=target.uses_openssh_client)
