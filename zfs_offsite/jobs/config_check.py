"""What `config --check` can prove about the settings without connecting anywhere.

Loading validates each value on its own; this looks at what a first night would
trip over on this host: an SSH key that is missing, readable by others or owned
by another user, a known_hosts file that cannot be read or lacks the host, and
an example config that still holds its placeholders. Each problem is one line
naming the setting, the file line it came from and the fix.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import paramiko

from zfs_offsite.connect import source_endpoint, target_endpoint
from zfs_offsite.errors import ConfigError
from zfs_offsite.settings import Settings
from zfs_offsite.transport.ssh import SshEndpoint, check_key, known_hosts_file

# The marker the shipped examples put on every line an admin must change (`# EDIT: ...`).
EDIT_MARKER = re.compile(r"#\s*EDIT:")
# Host names reserved for examples (RFC 2606, RFC 6761): never a real NAS or server.
_EXAMPLE_HOST = re.compile(r"(^|\.)(example\.(com|org|net)|example|invalid)$", re.IGNORECASE)


def edit_markers(config_file: Path) -> list[str]:
    """One line per `# EDIT` marker left in the file: its value is still the example's."""
    try:
        text = config_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []  # loading the settings already reported an unreadable file
    return [
        f"{config_file.absolute()}:{number}: still marked EDIT: set this line's value for "
        "this host, then delete its `# EDIT` comment"
        for number, line in enumerate(text.splitlines(), start=1)
        if EDIT_MARKER.search(line)
    ]


def _example_host(settings: Settings, name: str, host: str) -> list[str]:
    if not _EXAMPLE_HOST.search(host):
        return []
    return [
        f"setting {name} ({settings.origin(name)}): {host} is the example's placeholder "
        "host: name the real one"
    ]


def _key_problems(settings: Settings, endpoint: SshEndpoint) -> list[str]:
    """The key as OpenSSH will use it, plus: only its owner, this user, may read it."""
    name = f"{endpoint.setting}.key_file"
    where = f"setting {name} ({settings.origin(name)})"
    try:
        check_key(endpoint)
    except ConfigError as exc:  # "setting … is not set" names the setting itself
        return [str(exc) if str(exc).startswith("setting ") else f"{where}: {exc}"]
    if endpoint.key_file is None:  # check_key refuses an unset key; kept for the type checker
        return []
    info = endpoint.key_file.stat()
    if info.st_mode & 0o077:
        return [
            f"{where}: {endpoint.key_file} is accessible by others (mode "
            f"{stat.S_IMODE(info.st_mode):04o}): chmod 600 {endpoint.key_file}"
        ]
    if info.st_uid != os.getuid():
        return [
            f"{where}: {endpoint.key_file} is owned by uid {info.st_uid}, not by this user "
            f"(uid {os.getuid()}), so ssh would not use it: chown it to the user the backups "
            "run as, and run this check as that user"
        ]
    return []


def _known_hosts_problems(settings: Settings, endpoint: SshEndpoint) -> list[str]:
    """known_hosts exists, reads, and holds a key for the host (in `[host]:port` form)."""
    name = f"{endpoint.setting}.known_hosts"
    where = f"setting {name} ({settings.origin(name)})"
    try:
        path = known_hosts_file(endpoint)
        keys = paramiko.HostKeys(str(path))
    except ConfigError as exc:
        return [f"{where}: {exc}"]
    except (OSError, paramiko.SSHException) as exc:
        return [f"{where}: known_hosts file {endpoint.known_hosts} cannot be read: {exc}"]
    if keys.lookup(endpoint.known_hosts_name) is None:
        return [
            f"{where}: {path} holds no key for {endpoint.known_hosts_name}: add it with "
            f"`ssh-keyscan -p {endpoint.port} {endpoint.host} >> {path}` and check the key"
        ]
    return []


def _endpoint_problems(settings: Settings, endpoint: SshEndpoint, url_name: str) -> list[str]:
    return [
        *_example_host(settings, url_name, endpoint.host),
        *_key_problems(settings, endpoint),
        *_known_hosts_problems(settings, endpoint),
    ]


def check_settings(settings: Settings, config_file: Path | None) -> list[str]:
    """Every problem found without connecting, one self-contained line each; [] if none."""
    problems = edit_markers(config_file) if config_file is not None else []
    source = source_endpoint(settings.source, settings.target.timeout)
    if source is not None:
        problems += _endpoint_problems(settings, source, "source.ssh_url")
    if settings.target.parsed.scheme == "sftp":
        problems += _endpoint_problems(settings, target_endpoint(settings.target), "target.url")
    return problems
