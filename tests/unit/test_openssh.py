"""The OpenSSH client command line: subsystem only, host keys pinned, never a prompt."""

from __future__ import annotations

from pathlib import Path

import pytest

from zfs_offsite.errors import ConfigError
from zfs_offsite.openssh import ssh_argv
from zfs_offsite.settings import load_settings
from zfs_offsite.ssh import SshEndpoint


def test_argv_asks_for_the_sftp_subsystem_with_pinned_keys(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    endpoint = SshEndpoint("backup.example", 2222, "zfs_snap_backup", tmp_path / "key", known)
    argv = ssh_argv(endpoint)
    assert argv[-3:] == ["--", "backup.example", "sftp"] and "-s" in argv  # a subsystem
    assert argv[1:3] == ["-F", "/dev/null"]  # no ssh_config can redirect or relax it
    options = {argv[i + 1] for i, a in enumerate(argv) if a == "-o"}
    assert {"BatchMode=yes", "StrictHostKeyChecking=yes", "IdentitiesOnly=yes"} <= options
    assert f"UserKnownHostsFile={known}" in options
    assert "GlobalKnownHostsFile=/dev/null" in options


def test_openssh_client_cannot_take_a_passphrase() -> None:
    settings = load_settings(
        target={
            "url": "sftp://u@h/x",
            "key_passphrase": "secret",
            "client": "openssh",
        }
    )
    with pytest.raises(ConfigError, match=r"target\.client: openssh cannot use key_passphrase"):
        _ = settings.target.uses_openssh_client
    auto = load_settings(target={"url": "sftp://u@h/x", "key_passphrase": "secret"})
    assert auto.target.uses_openssh_client is False  # auto falls back to paramiko
