"""Child datasets on real zfs-fuse: backed up as members of their own, restored, drilled.

Before, `pool/elabfs-nest/sub` was in no member: backup said ok and a restore
of `nest` showed an empty `sub/`. Now it is member `nest~sub`; a dataset the
admin marks `zfs-offsite:skip=on` is left out, and said to be.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from tests.support.services import Pool, run
from tests.support.settings_edit import with_section
from tests.support.zfsdata import guid, snapshot, tree_digest, write_member_data
from zfs_offsite.archive.identity import MARKER_NAME
from zfs_offsite.connect import open_runner, open_store
from zfs_offsite.jobs.backup import backup_member, discover_selection
from zfs_offsite.jobs.drill import drill_member
from zfs_offsite.jobs.restore import download_chain, receive_commands, restore_member
from zfs_offsite.plan.backup import Action
from zfs_offsite.settings import Settings
from zfs_offsite.zfs.destination import dataset_exists
from zfs_offsite.zfs.members import SKIP_PROPERTY

pytestmark = pytest.mark.integration

SNAP = "auto-20190806.0200-1w"


def nested_pool(pool: Pool) -> None:
    """`elabfs-nest` with data in itself and in `sub`; `sub/cache` and below opted out."""
    for child in ("elabfs-nest", "elabfs-nest/sub", "elabfs-nest/sub/cache"):
        run(["zfs", "create", f"{pool.name}/{child}"])
    run(["zfs", "set", f"{SKIP_PROPERTY}=on", f"{pool.name}/elabfs-nest/sub/cache"])
    run(["zfs", "create", f"{pool.name}/elabfs-nest/sub/cache/inner"])
    for seed, child in enumerate(("elabfs-nest", "elabfs-nest/sub", "elabfs-nest/sub/cache")):
        write_member_data(pool.mountpoint / child, seed, megabytes=1)
    for child in ("elabfs-nest", "elabfs-nest/sub", "elabfs-nest/sub/cache"):
        snapshot(f"{pool.name}/{child}", SNAP)


def test_child_dataset_is_backed_up_restored_and_drilled(
    pool_factory: Callable[[], Pool],
    tmp_path: Path,
    settings_for: Callable[..., Settings],
) -> None:
    pool, restore = pool_factory(), pool_factory()
    nested_pool(pool)
    archive = tmp_path / "archive"
    settings = settings_for(pool, archive, local=True)

    selection = discover_selection(settings)
    assert [m.name for m in selection.members] == ["nest", "nest~sub"]
    assert [e.dataset for e in selection.excluded] == [
        f"{pool.name}/elabfs-nest/sub/cache",
        f"{pool.name}/elabfs-nest/sub/cache/inner",
    ]
    results = [backup_member(settings, m) for m in selection.members]
    assert [r.action for r in results] == [Action.FULL, Action.FULL]
    assert sorted(p.name for p in archive.iterdir()) == [MARKER_NAME, "nest", "nest~sub"]
    assert (archive / "nest~sub" / f"elabfs-nest~sub@{SNAP}.zst").is_file()

    sub = selection.members[1]
    with closing(open_runner(settings)) as runner, closing(open_store(settings.target)) as store:
        restore_member(settings, runner, store, "nest", f"{restore.name}/nest")
        restored = restore_member(settings, runner, store, "nest~sub", f"{restore.name}/nest/sub")
        assert restored.guid == guid(f"{pool.name}/elabfs-nest/sub@{SNAP}")
        whole = tree_digest(pool.mountpoint / "elabfs-nest/sub")
        src = {k: v for k, v in whole.items() if not k.startswith("cache/")}  # opted out
        assert tree_digest(restore.mountpoint / "nest/sub") == src
        assert any(name.startswith("random-1") for name in src)  # sub's own data came back

        # `restore --to-dir`: the printed lines, run by a shell, give the same snapshot
        point, paths = download_chain(store, "nest~sub", tmp_path / "chain")
        lines = receive_commands(paths, f"{restore.name}/sub-again")
        subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(lines)], check=True)
        assert guid(f"{restore.name}/sub-again@{point.snapshot}") == restored.guid

        scratch = f"{pool.name}/drill"
        record = drill_member(
            with_section(settings, "drill", scratch_dataset=scratch), runner, store, sub
        )
        assert record.guid == guid(f"{pool.name}/elabfs-nest/sub@{SNAP}")
        assert record.guid_checked_against == "source"
        assert not dataset_exists(runner, f"{scratch}/nest::sub")  # destroyed again
