"""Zvols on real OpenZFS 2.3 (zfs-fuse cannot make one): detected, backed up, drilled, restored.

A zvol below a member is a member of its own (`vm~disk0`): its send stream is
an ordinary one, so it is stored, checked and received like a filesystem's.
Skipped, with the reason printed, unless the VM is up (fixtures: conftest.py).
"""

from __future__ import annotations

import shlex
from contextlib import closing
from pathlib import Path

import pytest

from tests.support.openzfs_vm import vm_settings
from tests.support.settings_edit import with_section
from zfs_offsite.connect import open_store
from zfs_offsite.jobs.backup import backup_member, discover_selection
from zfs_offsite.jobs.drill import drill_member
from zfs_offsite.jobs.restore import restore_member, snapshot_guid
from zfs_offsite.plan.backup import Action
from zfs_offsite.zfs.commands import list_datasets
from zfs_offsite.zfs.destination import dataset_exists
from zfs_offsite.zfs.members import SKIP_PROPERTY
from zfs_offsite.zfs.runner import Runner

pytestmark = [pytest.mark.openzfs_vm]

MB = 4


def on_device(runner: Runner, zvol: str, command: str) -> str:
    """Run `command` with `$dev` the zvol's device node, once udev has made it."""
    wait = 'for i in $(seq 50); do [ -b "$dev" ] && break; udevadm settle; sleep 0.2; done'
    script = f"dev=/dev/zvol/{shlex.quote(zvol)}; {wait}; {command}"
    return runner.run(["sh", "-c", script]).stdout


def device_digest(runner: Runner, zvol: str) -> str:
    """sha256 of the zvol's first MB megabytes."""
    return on_device(runner, zvol, f'head -c {MB}M "$dev" | sha256sum').split()[0]


def test_a_zvol_below_a_member_is_detected_backed_up_drilled_and_restored(
    vm: tuple[Runner, str, Path], tmp_path: Path
) -> None:
    runner, pool, known_hosts = vm
    member, zvol, skipped = f"{pool}/elabfs-vm", f"{pool}/elabfs-vm/disk0", f"{pool}/elabfs-vm/swap"
    runner.run(["zfs", "create", member])
    runner.run(["zfs", "create", "-V", "16M", zvol])
    runner.run(["zfs", "create", "-V", "8M", "-o", f"{SKIP_PROPERTY}=on", skipped])
    on_device(runner, zvol, f'head -c {MB}M /dev/urandom > "$dev" && sync')
    for dataset in (member, zvol, skipped):
        runner.run(["zfs", "snapshot", f"{dataset}@s1"])
    assert list_datasets(runner, pool)[zvol].kind == "volume"  # the real `zfs get` answer

    settings = vm_settings(pool, tmp_path / "archive", known_hosts)
    selection = discover_selection(settings)
    assert [(m.name, m.kind) for m in selection.members] == [
        ("vm", "filesystem"),
        ("vm~disk0", "volume"),
    ]
    assert [(e.dataset, e.kind) for e in selection.excluded] == [(skipped, "volume")]
    disk = selection.members[1]
    assert backup_member(settings, disk).action is Action.FULL
    assert (tmp_path / "archive" / "vm~disk0" / "elabfs-vm~disk0@s1.zst").is_file()

    with closing(open_store(settings.target)) as store:
        drilling = with_section(settings, "drill", scratch_dataset=f"{pool}/drill")
        drill = drill_member(drilling, runner, store, disk)
        restored = restore_member(settings, runner, store, "vm~disk0", f"{pool}/restored/disk0")
    assert drill.guid_checked_against == "source"
    assert drill.guid == snapshot_guid(runner, f"{zvol}@s1")
    assert not dataset_exists(runner, f"{pool}/drill/vm::disk0")
    assert restored.guid == snapshot_guid(runner, f"{zvol}@s1")
    assert device_digest(runner, f"{pool}/restored/disk0") == device_digest(runner, zvol)
