"""The OpenSSH client command line: subsystem only, host keys pinned, no prompt but askpass."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from zfs_offsite.transport.openssh import PASSPHRASE_ENV, askpass_helper, explain, ssh_argv
from zfs_offsite.transport.ssh import SshEndpoint, unreachable_from_oserror


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


def test_passphrase_needs_askpass_only_and_stays_out_of_argv(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    endpoint = SshEndpoint("nas", 22, "u", tmp_path / "key", known, passphrase="s3cret words")
    argv = ssh_argv(endpoint, askpass=True)
    assert not any("s3cret" in a for a in argv)
    options = {argv[i + 1] for i, a in enumerate(argv) if a == "-o"}
    # ssh may ask for the key passphrase and nothing else: no password, no host key question.
    assert {
        "BatchMode=no",
        "PasswordAuthentication=no",
        "KbdInteractiveAuthentication=no",
        "PreferredAuthentications=publickey",
        "StrictHostKeyChecking=yes",
        "IdentityAgent=none",
    } <= options


def test_askpass_helper_prints_what_ssh_passes_down() -> None:
    helper = askpass_helper()
    done = subprocess.run(
        [str(helper), "Enter passphrase for key '/k':"],
        env={PASSPHRASE_ENV: "-n two  words"},
        capture_output=True,
        check=True,
    )
    assert done.stdout == b"-n two  words\n"
    assert helper.stat().st_mode & 0o777 == 0o700
    assert "two" not in helper.read_text()  # the helper holds no secret


@pytest.mark.parametrize(
    ("said", "reason"),
    [
        ("ssh: connect to host 10.0.0.9 port 22: Connection timed out", errno.ETIMEDOUT),
        ("ssh: connect to host 10.0.0.9 port 22: No route to host", errno.EHOSTUNREACH),
        ("ssh: connect to host 10.0.0.9 port 22: Network is unreachable", errno.ENETUNREACH),
    ],
)
def test_unreachable_reads_the_same_for_both_clients(said: str, reason: int) -> None:
    endpoint = SshEndpoint("10.0.0.9", 22, "u", Path("/k"), Path("/kh"))
    lines = ["OpenSSH_9.2p1 Debian-2+deb12u10, OpenSSL 3.0.19 27 Jan 2026", "debug1: x", said]
    from_ssh = explain(endpoint, lines, 255)
    from_paramiko = unreachable_from_oserror(endpoint, OSError(reason, os.strerror(reason)))
    assert str(from_ssh) == str(from_paramiko)
    assert str(from_ssh).startswith(f"cannot reach 10.0.0.9:22: {os.strerror(reason)}: ")
    assert from_ssh.retryable  # type: ignore[attr-defined]
    timeout = unreachable_from_oserror(endpoint, TimeoutError("timed out"))
    assert "Connection timed out" in str(timeout)


def test_unexplained_ssh_failure_drops_the_banner() -> None:
    endpoint = SshEndpoint("nas", 22, "u", Path("/k"), Path("/kh"))
    lines = ["OpenSSH_9.2p1 Debian-2+deb12u10, OpenSSL 3.0.19 27 Jan 2026", "debug1: x"]
    error = explain(endpoint, [*lines, "Connection closed by 10.0.0.9 port 22"], 255)
    assert str(error) == "ssh to nas:22 failed: Connection closed by 10.0.0.9 port 22"
    assert str(explain(endpoint, lines, 255)) == "ssh to nas:22 failed: ssh exited 255"
