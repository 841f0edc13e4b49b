"""Bookmarks on real OpenZFS 2.3 (the VM from ../shared/tools/openzfs-vm), in pull mode.

Skipped, with the reason printed, unless the VM is up (fixtures: conftest.py).
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import pytest

from tests.support.openzfs_vm import add_snapshot, vm_settings
from zfs_offsite.connect import open_store
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.jobs.restore import restore_member, snapshot_guid
from zfs_offsite.plan.backup import Action
from zfs_offsite.settings import Settings
from zfs_offsite.zfs.protect import mark_tag
from zfs_offsite.zfs.runner import Runner

pytestmark = [pytest.mark.openzfs_vm]


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
        restored = restore_member(settings, runner, store, "ivy", f"{pool}/restored")
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
