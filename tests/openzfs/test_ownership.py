"""Ownership on real OpenZFS 2.3 (the VM), bookmarks as the base mark and no holds.

The drill and `restore --force` must refuse on their own rules, since no hold
sits on anything: `zfs receive -o` sets the mark in the same receive here.
Skipped, with the reason printed, unless the VM is up (fixtures: conftest.py).
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import pytest

from tests.support.openzfs_vm import add_snapshot, vm_settings
from tests.support.settings_edit import with_section
from zfs_offsite.connect import open_store
from zfs_offsite.errors import ConfigError, PermanentError
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.jobs.drill import drill_member
from zfs_offsite.jobs.restore import restore_member, snapshot_guid
from zfs_offsite.plan.backup import Action
from zfs_offsite.settings import Settings
from zfs_offsite.zfs.commands import MARK
from zfs_offsite.zfs.ownership import detect_receive_option
from zfs_offsite.zfs.runner import Runner

pytestmark = [pytest.mark.openzfs_vm]


def snapshots_of(runner: Runner, dataset: str) -> list[str]:
    out = runner.run(
        ["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-s", "createtxg", dataset]
    )
    return [line.partition("@")[2] for line in out.stdout.split()]


def archived(runner: Runner, pool: str, tmp_path: Path, known_hosts: Path) -> Settings:
    """Member `own` with s1 (full) and s2, s3 inside one `-I s1 s4` file; bookmarks only."""
    dataset = f"{pool}/elabfs-own"
    runner.run(["zfs", "create", dataset])
    settings = vm_settings(pool, tmp_path / "archive", known_hosts)
    assert settings.protect_base == "auto"  # a bookmark on OpenZFS: no hold
    add_snapshot(runner, dataset, "s1")
    (member,) = discover_members(settings)
    assert backup_member(settings, member).action is Action.FULL
    for name in ("s2", "s3", "s4"):
        add_snapshot(runner, dataset, name)
    (member,) = discover_members(settings)
    assert backup_member(settings, member).action is Action.INCREMENTAL
    holds = runner.run(["zfs", "get", "-H", "-r", "-o", "value", "userrefs", dataset]).stdout
    assert set(holds.split()) == {"0", "-"}
    return settings


def test_drill_and_force_refuse_live_data_and_inside_snapshots_restore(
    vm: tuple[Runner, str, Path], tmp_path: Path
) -> None:
    runner, pool, known_hosts = vm
    settings = archived(runner, pool, tmp_path, known_hosts)
    assert detect_receive_option(runner)  # OpenZFS: the mark comes with the receive
    scratch = f"{pool}/restore"
    with closing(open_store(settings.target)) as store:
        # restore --snapshot s3: inside the -I file, rolled back to it.
        admins = f"{scratch}/own"
        result = restore_member(settings, runner, store, "own", admins, snapshot="s3", run="r1")
        assert result.rolled_back == ["s4"]
        assert snapshots_of(runner, admins) == ["s1", "s2", "s3"]
        assert result.guid == snapshot_guid(runner, f"{pool}/elabfs-own@s3")
        mark = runner.run(["zfs", "get", "-H", "-o", "value,source", MARK, admins]).stdout
        assert mark.strip() == "zfs-offsite restore r1\tlocal"

        # The admin works in that restore; the drill must leave it alone.
        runner.run(["zfs", "snapshot", f"{admins}@admin-work"])
        (member,) = discover_members(settings)
        with pytest.raises(PermanentError, match=f"^{admins} exists and was not created by"):
            drill_member(
                with_section(settings, "drill", scratch_dataset=scratch), runner, store, member
            )
        assert snapshots_of(runner, admins) == ["s1", "s2", "s3", "admin-work"]

        # --force onto the live member: refused though every snapshot of it is archived.
        live = f"{pool}/elabfs-own"
        with pytest.raises(ConfigError, match=f"^--force will not replace {live}: {live} is a"):
            restore_member(settings, runner, store, "own", live, force=True)
        assert snapshots_of(runner, live) == ["s1", "s2", "s3", "s4"]
        # --force onto the admin's restore: refused over admin-work.
        with pytest.raises(ConfigError, match=r"not in own's archive \(admin-work\)"):
            restore_member(settings, runner, store, "own", admins, force=True)
        assert snapshots_of(runner, admins) == ["s1", "s2", "s3", "admin-work"]
