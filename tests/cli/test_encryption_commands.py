"""Encrypted backups through the CLI and its flows: keys from settings, never from parameters."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import Cli
from tests.support.services import Pool
from tests.support.zfsdata import MEMBERS, SNAP, destroy_dataset, guid

pytestmark = pytest.mark.integration


def keygen(cli: Cli, path: Path) -> str:
    done = cli("keygen", str(path))
    assert done.code == 0, done.output
    return done.stdout.strip()


def dataset_exists(name: str) -> bool:
    return subprocess.run(["zfs", "list", name], capture_output=True).returncode == 0


def test_backup_verify_and_restore_of_an_encrypted_archive(
    cli: Cli, module_pool: Pool, tmp_path: Path
) -> None:
    key, stranger = tmp_path / "restore.key", tmp_path / "stranger.key"
    public = keygen(cli, key)
    stranger_public = keygen(cli, stranger)
    archive = tmp_path / "archive"
    nas = cli.with_env(
        ZFS_OFFSITE_TARGET__URL=f"file://{archive}",
        ZFS_OFFSITE_ENCRYPTION__RECIPIENTS=json.dumps([public]),
    )
    done = nas("backup")
    assert done.code == 0, done.output
    for member in MEMBERS:
        stored = archive / member / f"elabfs-{member}@{SNAP}.zst.age"
        assert stored.read_bytes().startswith(b"age-encryption.org/v1\n")
        meta = json.loads(stored.with_name(stored.name + ".json").read_text())
        assert meta["recipients"] == [public]

    verify = nas("verify", "--json")
    assert verify.code == 0, verify.output
    details = {m["member"]: m["files"][0]["detail"] for m in json.loads(verify.stdout)["members"]}
    assert all("END record was not" in d for d in details.values()), details

    destination = f"{module_pool.name}/restored-alice"
    wrong = nas(
        "restore", "alice", destination, ZFS_OFFSITE_ENCRYPTION__IDENTITY_FILE=str(stranger)
    )
    assert wrong.code == 2, wrong.output  # a config error: the setting names the wrong key
    assert "Traceback" not in wrong.output
    assert wrong.err_lines[-1].endswith(
        f"alice/elabfs-alice@{SNAP}.zst.age: the identity in setting encryption.identity_file "
        f"opens none of the file's recipients (its recipients: {public}); the identity's key "
        f"is {stranger_public}: name the secret key of one of them"
    )
    assert not dataset_exists(destination)
    assert stranger.read_text().splitlines()[-1] not in wrong.output  # never the secret

    with_key = nas.with_env(ZFS_OFFSITE_ENCRYPTION__IDENTITY_FILE=str(key))
    restored = with_key("restore", "alice", destination)
    assert restored.code == 0, restored.output
    assert guid(f"{destination}@{SNAP}") == guid(f"{module_pool.name}/elabfs-alice@{SNAP}")
    secret = key.read_text().splitlines()[-1]
    assert secret not in restored.output

    download = with_key("restore", "bob", "tank/x", "--to-dir", str(tmp_path / "dl"))
    assert download.code == 0, download.output
    header, *commands = download.stdout.splitlines()
    assert header == f"# downloaded to {tmp_path / 'dl'}; restore with standard tools:"
    assert commands[0] == f"  cd {tmp_path / 'dl'}"  # the rest runs as printed: `| sh`
    assert f"age -d -i {key} -- elabfs-bob@{SNAP}.zst.age | zstd -dc | zfs receive" in (
        download.stdout
    )
    destroy_dataset(destination)
