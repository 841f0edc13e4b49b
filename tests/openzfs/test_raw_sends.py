"""Raw sends (`zfs send -w`) of a natively encrypted dataset on real OpenZFS, in pull mode.

zfs-fuse has no native encryption, so this runs only against the VM (fixtures:
conftest.py) and is skipped, with the reason printed, when the VM is down.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from contextlib import closing
from pathlib import Path

import pytest

from tests.support.openzfs_vm import add_snapshot, tree_digest, vm_settings
from tests.support.settings_edit import with_section
from zfs_offsite.connect import open_store
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.jobs.drill import drill_member
from zfs_offsite.jobs.restore import dataset_exists, restore_member, snapshot_guid
from zfs_offsite.keys.keygen import write_identity_file
from zfs_offsite.plan.backup import Action
from zfs_offsite.zfs.runner import Runner

pytestmark = [pytest.mark.openzfs_vm]


def stored_stream(path: Path) -> bytes:
    """The send stream a stored `.zst` file holds, as `zstd -d` gives it."""
    return subprocess.run(["zstd", "-d", "-c", str(path)], check=True, capture_output=True).stdout


def prop(runner: Runner, name: str, dataset: str) -> str:
    return runner.run(["zfs", "get", "-H", "-o", "value", name, dataset]).stdout.strip()


def encrypted_dataset(runner: Runner, dataset: str) -> tuple[str, str]:
    """A passphrase-encrypted dataset with a text file in it: (its key file, the file's text).

    The key file is in the pool's unencrypted root, so it goes with the pool.
    """
    pool = dataset.split("/", 1)[0]
    keyfile, marker = f"/{pool}/key.txt", f"plaintext-marker-{secrets.token_hex(8)}"
    write = 'umask 077 && printf "%s\\n" "$1" > "$2"'
    runner.run(["sh", "-c", write, "sh", secrets.token_hex(16), keyfile])
    runner.run(
        [
            *("zfs", "create", "-o", "encryption=on", "-o", "keyformat=passphrase"),
            *("-o", f"keylocation=file://{keyfile}", dataset),
        ]
    )
    runner.run(["sh", "-c", write, "sh", marker, f"/{dataset}/notes.txt"])
    return keyfile, marker


def test_encrypted_dataset_goes_raw_and_restores_raw_needing_its_key(
    vm: tuple[Runner, str, Path], tmp_path: Path
) -> None:
    runner, pool, known_hosts = vm
    dataset, restored = f"{pool}/elabfs-kim", f"{pool}/restored"
    keyfile, marker = encrypted_dataset(runner, dataset)
    archive = tmp_path / "archive"
    settings = vm_settings(pool, archive, known_hosts)

    add_snapshot(runner, dataset, "s1", 2)
    (member,) = discover_members(settings)
    assert member.encryption == "aes-256-gcm" and member.natively_encrypted
    full = backup_member(settings, member)
    assert (full.action, full.raw) == (Action.FULL, True)
    assert full.estimated_bytes and full.estimated_bytes > 2_000_000  # `send -nP -w`

    add_snapshot(runner, dataset, "s2")
    (member,) = discover_members(settings)
    incremental = backup_member(settings, member)
    assert (incremental.action, incremental.base, incremental.raw) == (
        Action.INCREMENTAL,
        "s1",
        True,
    )
    names = ["elabfs-kim@s1.zst", "elabfs-kim@s1.to.elabfs-kim@s2.zst"]
    for name in names:
        assert json.loads((archive / "kim" / f"{name}.json").read_text())["raw"] is True
        # Still encrypted with the dataset's key: no file content in the clear.
        assert marker.encode() not in stored_stream(archive / "kim" / name)

    with closing(open_store(settings.target)) as store:
        drilling = with_section(settings, "drill", scratch_dataset=f"{pool}/drill")
        drill = drill_member(drilling, runner, store, member)
        result = restore_member(settings, runner, store, "kim", restored)
    # The drill receives the raw chain too (no key needed for that), checks the GUID, cleans up.
    assert (drill.snapshot, drill.files, drill.guid_checked_against) == ("s2", 2, "source")
    assert not dataset_exists(runner, f"{pool}/drill/kim")
    assert [f.filename for f in result.files] == names and result.needs_key
    for snap in ("s1", "s2"):
        guid = snapshot_guid(runner, f"{restored}@{snap}")
        assert guid is not None and guid == snapshot_guid(runner, f"{dataset}@{snap}")
    # Received raw: encrypted, its own encryption root, unmountable until its key is loaded.
    assert prop(runner, "encryption", restored) == "aes-256-gcm"
    assert prop(runner, "keystatus", restored) == "unavailable"
    assert prop(runner, "mounted", restored) == "no"
    assert runner.run(["zfs", "mount", restored], check=False).returncode != 0

    runner.run(["zfs", "load-key", "-L", f"file://{keyfile}", restored])
    runner.run(["zfs", "mount", restored])
    source_tree = tree_digest(runner, f"/{dataset}")
    assert "./notes.txt" in source_tree and "./s2.bin" in source_tree
    assert tree_digest(runner, f"/{restored}") == source_tree


def test_raw_send_never_starts_a_plain_chain_that_holds_plaintext(
    vm: tuple[Runner, str, Path], tmp_path: Path
) -> None:
    """The control: with raw sends off the stream is decrypted, and the raw chain is not reused."""
    runner, pool, known_hosts = vm
    dataset = f"{pool}/elabfs-lu"
    _, marker = encrypted_dataset(runner, dataset)
    archive = tmp_path / "archive"
    settings = vm_settings(pool, archive, known_hosts)
    add_snapshot(runner, dataset, "s1")
    (member,) = discover_members(settings)
    assert backup_member(settings, member).raw

    never = vm_settings(pool, archive, known_hosts, raw_send="never")
    add_snapshot(runner, dataset, "s2")
    (member,) = discover_members(never)
    plain = backup_member(never, member)
    assert (plain.action, plain.raw) == (Action.FULL, False)
    assert "chain is raw and source.raw_send is never" in plain.reason
    assert json.loads((archive / "lu" / "elabfs-lu@s2.zst.json").read_text())["raw"] is False
    assert marker.encode() in stored_stream(archive / "lu" / "elabfs-lu@s2.zst")
    assert marker.encode() not in stored_stream(archive / "lu" / "elabfs-lu@s1.zst")


def test_age_on_raw_sends_where_configured_needs_both_keys(
    vm: tuple[Runner, str, Path], tmp_path: Path
) -> None:
    """Both layers: a raw stream age-encrypted too; restore needs the identity, then the key."""
    runner, pool, known_hosts = vm
    dataset, restored = f"{pool}/elabfs-mo", f"{pool}/restored-mo"
    keyfile, _ = encrypted_dataset(runner, dataset)
    archive, identity = tmp_path / "archive", tmp_path / "key.txt"
    public = write_identity_file(identity)
    encryption = {"recipients": [public], "identity_file": str(identity), "age_raw_sends": True}
    settings = vm_settings(pool, archive, known_hosts, encryption=encryption)
    add_snapshot(runner, dataset, "s1")
    (member,) = discover_members(settings)
    result = backup_member(settings, member)
    assert (result.action, result.raw) == (Action.FULL, True)
    assert result.remote_path is not None and result.remote_path.endswith("/elabfs-mo@s1.zst.age")
    sidecar = json.loads((archive / "mo" / "elabfs-mo@s1.zst.age.json").read_text())
    assert sidecar["raw"] is True and sidecar["recipients"] == [public]
    # Not a zstd frame any more: the age header comes first.
    assert (
        (archive / "mo" / "elabfs-mo@s1.zst.age").read_bytes().startswith(b"age-encryption.org/v1")
    )

    with closing(open_store(settings.target)) as store:
        restore = restore_member(settings, runner, store, "mo", restored)  # identity_file
    assert restore.needs_key
    assert snapshot_guid(runner, f"{restored}@s1") == snapshot_guid(runner, f"{dataset}@s1")
    runner.run(["zfs", "load-key", "-L", f"file://{keyfile}", restored])
    runner.run(["zfs", "mount", restored])
    assert tree_digest(runner, f"/{restored}") == tree_digest(runner, f"/{dataset}")
