"""The unmounted disk on real OpenZFS 2.3 (bookmarks, and holds `zfs holds` can list).

Pull mode: zfs runs in the VM, the archive is a local directory whose "disk"
goes missing. Skipped, with the reason printed, unless the VM is up.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.openzfs_vm import add_snapshot, vm_settings
from zfs_offsite.archive.identity import MARKER_NAME, ArchiveRootError
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.plan.backup import Action
from zfs_offsite.zfs.record import record_property
from zfs_offsite.zfs.runner import Runner

pytestmark = [pytest.mark.openzfs_vm]


def marks(runner: Runner, dataset: str) -> str:
    """The dataset's bookmarks and every snapshot's hold tags, as an admin would list them."""
    bookmarks = runner.run(["zfs", "list", "-H", "-t", "bookmark", "-o", "name", "-r", dataset])
    snapshots = runner.run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-r", dataset])
    holds = [runner.run(["zfs", "holds", "-H", s]).stdout for s in snapshots.stdout.split()]
    return bookmarks.stdout + "".join(holds)


@pytest.mark.parametrize("protect_base", ["bookmark", "hold"])
def test_a_missing_archive_root_with_our_mark_fails_and_moves_no_mark(
    vm: tuple[Runner, str, Path], tmp_path: Path, protect_base: str
) -> None:
    runner, pool, known_hosts = vm
    dataset = f"{pool}/elabfs-idn"
    runner.run(["zfs", "create", dataset])
    archive = tmp_path / "usb" / "archive"
    settings = vm_settings(pool, archive, known_hosts).model_copy(
        update={"protect_base": protect_base}
    )
    add_snapshot(runner, dataset, "s1")
    (member,) = discover_members(settings)
    assert backup_member(settings, member).action is Action.FULL

    # Another target's hold or bookmark is no proof: a first backup there goes ahead.
    other = vm_settings(pool, tmp_path / "other", known_hosts).model_copy(
        update={"protect_base": protect_base}
    )
    assert backup_member(other, member).action is Action.FULL

    add_snapshot(runner, dataset, "s2")
    shutil.rmtree(tmp_path / "usb")  # the disk is gone, its mount point too
    # The marks alone are evidence too (an archive whose members have no record yet).
    runner.run(["zfs", "inherit", record_property(str(settings.target.parsed)), dataset])
    before = marks(runner, dataset)
    (member,) = discover_members(settings)
    with pytest.raises(ArchiveRootError) as caught:
        backup_member(settings, member)
    said = str(caught.value)
    assert f"archive root file://{archive} is missing but {dataset} (" in said
    assert ("bookmark #" if protect_base == "bookmark" else "hold ") in said
    assert "is the disk mounted?" in said
    assert not (tmp_path / "usb").exists()
    assert marks(runner, dataset) == before


def test_with_protect_base_off_the_archive_record_is_the_evidence(
    vm: tuple[Runner, str, Path], tmp_path: Path
) -> None:
    """No bookmark, no hold: the record set over SSH after the first backup refuses the
    missing root; another target's record is no proof."""
    runner, pool, known_hosts = vm
    dataset = f"{pool}/elabfs-rec"
    runner.run(["zfs", "create", dataset])
    archive = tmp_path / "usb" / "archive"
    settings = vm_settings(pool, archive, known_hosts).model_copy(update={"protect_base": "off"})
    add_snapshot(runner, dataset, "s1")
    (member,) = discover_members(settings)
    assert backup_member(settings, member).action is Action.FULL
    archive_id = json.loads((archive / MARKER_NAME).read_text())["archive_id"]
    prop = record_property(f"file://{archive}")
    got = runner.run(["zfs", "get", "-H", "-o", "value,source", prop, dataset]).stdout.split()
    assert got == [archive_id, "local"]
    assert marks(runner, dataset) == ""  # protect_base off: no bookmark, no hold

    other = vm_settings(pool, tmp_path / "other", known_hosts).model_copy(
        update={"protect_base": "off"}
    )
    (member,) = discover_members(other)
    assert backup_member(other, member).action is Action.FULL

    add_snapshot(runner, dataset, "s2")
    shutil.rmtree(tmp_path / "usb")
    (member,) = discover_members(settings)
    with pytest.raises(ArchiveRootError) as caught:
        backup_member(settings, member)
    said = str(caught.value)
    assert f"archive root file://{archive} is missing but {dataset} ({prop}={archive_id})" in said
    assert "is the disk mounted?" in said
    assert not (tmp_path / "usb").exists()
