"""`verify` of files the SFTP login cannot read: the file, or member, and the reason are named.

The test sshd's SFTP login is an ordinary user, so `chmod 000` on the server
really refuses its reads (as root it would not).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.cli import Cli, base_env
from tests.support.services import Pool, SshServer
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.settings import Settings

pytestmark = pytest.mark.integration


def test_verify_names_what_the_login_cannot_read_and_why(
    source_pool: Pool,
    sftp_dir: Path,
    sshd: SshServer,
    settings_for: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    settings = settings_for(source_pool, sftp_dir)
    for member in discover_members(settings):
        backup_member(settings, member)
    (bob_file,) = (sftp_dir / "bob").glob("*.zst")
    bob_file.chmod(0)  # one file the login cannot open
    (sftp_dir / "carol").chmod(0)  # a whole member directory it cannot list
    (tmp_path / "cwd").mkdir()
    cli = Cli(
        base_env(tmp_path / "prefect")
        | {
            "ZFS_OFFSITE_SOURCE__POOL": source_pool.name,
            "ZFS_OFFSITE_TARGET__URL": f"sftp://{sshd.user}@127.0.0.1:{sshd.port}{sftp_dir}",
            "ZFS_OFFSITE_TARGET__KEY_FILE": str(sshd.client_key),
            "ZFS_OFFSITE_TARGET__KNOWN_HOSTS": str(sshd.known_hosts),
        },
        tmp_path / "cwd",
    )
    try:
        text = cli("verify")
        document = cli("verify", "--json")
    finally:
        (sftp_dir / "carol").chmod(0o755)
        bob_file.chmod(0o644)

    # Text, without -v: the file and the reason, and the member that could not be listed.
    assert text.code == 1, text.output
    assert "Traceback" not in text.output
    bob_lines = [line for line in text.err_lines if bob_file.name in line]
    assert len(bob_lines) == 1, text.output
    assert bob_lines[0].startswith(f"error: bob/{bob_file.name}: unreadable: "), bob_lines
    assert "permission denied" in bob_lines[0].lower(), bob_lines
    carol_lines = [line for line in text.err_lines if line.startswith("error: carol: unreadable:")]
    assert len(carol_lines) == 1, text.output
    assert "permission denied" in carol_lines[0].lower(), carol_lines
    summary = "error: verify failed: verify found 2 unsound member(s): bob, carol"
    assert text.err_lines[-1] == summary

    # JSON: every member, the unreadable file with its verdict and reason.
    assert document.code == 1, document.output
    members = {m["member"]: m for m in json.loads(document.stdout)["members"]}
    assert {name: m["verdict"] for name, m in members.items()} == {
        "alice": "ok",
        "bob": "unreadable",
        "carol": "unreadable",
    }
    (bob_entry,) = members["bob"]["files"]
    assert (bob_entry["file"], bob_entry["verdict"]) == (bob_file.name, "unreadable")
    assert "permission denied" in bob_entry["detail"].lower(), bob_entry
    assert str(bob_file) in bob_entry["detail"], bob_entry  # the path on the server
    assert "permission denied" in members["carol"]["detail"].lower(), members["carol"]
    # Unknown bytes are not called corrupt: no mark a backup would then avoid.
    assert not list(sftp_dir.rglob("*.corrupt"))
