"""Bookmarks on real OpenZFS 2.3 (the VM from ../shared/tools/openzfs-vm), in pull mode.

Skipped, with the reason printed, unless the VM is up: start it with
`../shared/tools/openzfs-vm/start.sh` (build it once with `build.sh`).
"""

from __future__ import annotations

import os
import secrets
import shlex
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from zfs_offsite.connect import open_runner, open_store
from zfs_offsite.errors import ZfsOffsiteError
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.jobs.restore import restore_member, snapshot_guid
from zfs_offsite.plan.backup import Action
from zfs_offsite.settings import Settings, load_settings
from zfs_offsite.zfs.commands import detect_features
from zfs_offsite.zfs.protect import mark_tag
from zfs_offsite.zfs.runner import Runner

pytestmark = [pytest.mark.openzfs_vm]

VM_CACHE = Path(os.environ.get("OPENZFS_VM_CACHE", "/var/tmp/openzfs-vm"))
VM_PORT = int(os.environ.get("OPENZFS_VM_PORT", "2222"))


def vm_settings(pool: str, archive: Path, known_hosts: Path) -> Settings:
    return load_settings(
        source={
            "pool": pool,
            "ssh_url": f"ssh://root@127.0.0.1:{VM_PORT}",
            "key_file": str(VM_CACHE / "id_ed25519"),
            "known_hosts": str(known_hosts),
        },
        target={"url": f"file://{archive}", "timeout": 60},
    )


@pytest.fixture(scope="module")
def vm_known_hosts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The VM's pinned host key, under the name our host key check looks up."""
    pinned = VM_CACHE / "known_hosts"
    if not (VM_CACHE / "id_ed25519").exists() or not pinned.exists():
        pytest.skip(f"OpenZFS VM not built ({VM_CACHE} has no key): run openzfs-vm/build.sh")
    path = tmp_path_factory.mktemp("vm") / "known_hosts"
    lines = [line.split(None, 1)[1] for line in pinned.read_text().splitlines() if line.strip()]
    path.write_text("".join(f"[127.0.0.1]:{VM_PORT} {key}\n" for key in lines))
    return path


@pytest.fixture
def vm(vm_known_hosts: Path, tmp_path: Path) -> Iterator[tuple[Runner, str, Path]]:
    """A file-backed pool in the VM, destroyed afterwards; skipped if the VM is not up."""
    pool = f"zov{secrets.token_hex(3)}"
    settings = vm_settings(pool, tmp_path / "archive", vm_known_hosts)
    runner = open_runner(settings)
    try:
        features = detect_features(runner)
    except ZfsOffsiteError as exc:
        runner.close()
        pytest.skip(f"OpenZFS VM not reachable on 127.0.0.1:{VM_PORT} ({exc}): run start.sh")
    assert features.bookmarks and features.send_estimate, features
    image = f"/root/{pool}.img"
    runner.run(["truncate", "-s", "512M", image])
    runner.run(["zpool", "create", pool, image])
    try:
        yield runner, pool, vm_known_hosts
    finally:
        runner.run(["zpool", "destroy", "-f", pool], check=False)
        runner.run(["rm", "-f", image], check=False)
        runner.close()


def add_snapshot(runner: Runner, dataset: str, name: str, megabytes: int = 1) -> None:
    """New random data in the dataset, then a snapshot of it."""
    path = shlex.quote(f"/{dataset}/{name}.bin")
    runner.run(["sh", "-c", f"head -c {megabytes}M /dev/urandom > {path}"])
    runner.run(["zfs", "snapshot", f"{dataset}@{name}"])


def test_destroyed_base_still_gives_an_incremental_from_its_bookmark(
    vm: tuple[Runner, str, Path], tmp_path: Path
) -> None:
    runner, pool, known_hosts = vm
    dataset = f"{pool}/elabfs-ivy"
    runner.run(["zfs", "create", dataset])
    settings = vm_settings(pool, tmp_path / "archive", known_hosts)

    add_snapshot(runner, dataset, "s1", 2)
    (member,) = discover_members(settings)
    first = backup_member(settings, member)
    assert first.action is Action.FULL
    assert first.estimated_bytes and first.estimated_bytes > 2_000_000  # `send -nP` on OpenZFS
    assert first.protection and first.protection.startswith("bookmark #zfs-offsite-")
    mark = first.protection.removeprefix("bookmark #")

    add_snapshot(runner, dataset, "s2")
    runner.run(["zfs", "destroy", f"{dataset}@s1"])  # the NAS's own retention
    (member,) = discover_members(settings)
    assert [b.name for b in member.bookmarks] == [mark]
    second = backup_member(settings, member)
    assert second.action is Action.INCREMENTAL and second.base == "s1"
    assert "bookmark" in second.reason
    assert (tmp_path / "archive" / "ivy" / "elabfs-ivy@s1.to.elabfs-ivy@s2.zst").exists()
    (member,) = discover_members(settings)
    assert [b.name for b in member.bookmarks] == [mark.replace("_s1", "_s2")]  # moved forward

    with closing(open_store(settings.target)) as store:
        restored = restore_member(runner, store, "ivy", f"{pool}/restored")
    assert restored.snapshot == "s2" and len(restored.files) == 2
    source_guid = snapshot_guid(runner, f"{dataset}@s2")
    assert source_guid is not None and restored.guid == source_guid


def test_hold_mechanism_on_openzfs_moves_forward(
    vm: tuple[Runner, str, Path], tmp_path: Path
) -> None:
    runner, pool, known_hosts = vm
    dataset = f"{pool}/elabfs-jo"
    runner.run(["zfs", "create", dataset])
    settings = vm_settings(pool, tmp_path / "archive", known_hosts)
    settings = settings.model_copy(update={"protect_base": "hold"})
    add_snapshot(runner, dataset, "s1")
    (member,) = discover_members(settings)
    assert backup_member(settings, member).protection == f"hold {hold_tag(settings)} on @s1"
    assert runner.run(["zfs", "destroy", f"{dataset}@s1"], check=False).returncode != 0

    add_snapshot(runner, dataset, "s2")
    (member,) = discover_members(settings)
    assert backup_member(settings, member).action is Action.INCREMENTAL
    holds = runner.run(["zfs", "holds", "-H", f"{dataset}@s2"]).stdout
    assert hold_tag(settings) in holds  # OpenZFS can list what zfs-fuse cannot
    assert runner.run(["zfs", "destroy", f"{dataset}@s1"], check=False).returncode == 0


def hold_tag(settings: Settings) -> str:
    return mark_tag(str(settings.target.parsed))
