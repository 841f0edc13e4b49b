"""Ownership on real zfs-fuse and the real sshd: the tool destroys only what it created.

Member `eve` has S1 (the full), then S2 and S3 carried inside ONE `-I S1 S4`
file. The drill receives into `<pool>/restore`, where the README's own restore
example lives: an admin's dataset there must survive it. `restore --force`
must not replace a live member, nor a dataset holding snapshots the archive
lacks, without `--destroy-live-dataset`; zfs-fuse has no bookmarks, so these
run with `protect_base = "off"` (no hold on the member either).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.services import Pool, run
from tests.support.settings_edit import with_section
from tests.support.zfsdata import create_member, guid, snapshot, write_member_data
from zfs_offsite.connect import open_runner, open_store
from zfs_offsite.errors import ConfigError, PermanentError
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.jobs.drill import drill_member
from zfs_offsite.jobs.restore import (
    RestoreResult,
    download_chain,
    member_datasets,
    receive_commands,
    restore_member,
)
from zfs_offsite.plan.backup import Action
from zfs_offsite.settings import Settings
from zfs_offsite.zfs.commands import MARK
from zfs_offsite.zfs.destination import dataset_exists

pytestmark = pytest.mark.integration

S = [f"auto-2019080{d}.0200-1w" for d in range(6, 10)]
LINK = f"elabfs-eve@{S[0]}.to.elabfs-eve@{S[3]}.zst"  # carries S2 and S3


@dataclass
class Archived:
    pool: Pool
    settings: Settings
    dataset: str


def snapshots_of(dataset: str) -> list[str]:
    out = run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-s", "createtxg", "-r"])
    return [n.partition("@")[2] for n in out.stdout.split() if n.startswith(f"{dataset}@")]


def mark_of(dataset: str) -> str:
    return run(["zfs", "get", "-H", "-o", "value,source", MARK, dataset]).stdout.strip()


@pytest.fixture
def archived(
    pool_factory: Callable[[], Pool], sftp_dir: Path, settings_for: Callable[..., Settings]
) -> Archived:
    pool = pool_factory()
    dataset = create_member(pool.name, "eve")
    settings = settings_for(pool, sftp_dir).model_copy(update={"protect_base": "off"})

    def backup() -> Action:
        (member,) = discover_members(settings)
        return backup_member(settings, member).action

    write_member_data(pool.mountpoint / "elabfs-eve", 0, 1)
    snapshot(dataset, S[0])
    assert backup() is Action.FULL
    for seed in (1, 2, 3):
        write_member_data(pool.mountpoint / "elabfs-eve", seed, 1)
        snapshot(dataset, S[seed])
    assert backup() is Action.INCREMENTAL
    assert (sftp_dir / "eve" / LINK).is_file()
    held = run(["zfs", "get", "-H", "-r", "-o", "value", "userrefs", dataset]).stdout.split()
    assert set(held) == {"0", "-"}  # no hold anywhere on the member
    return Archived(pool, settings, dataset)


def restore(a: Archived, destination: str, **kwargs: object) -> RestoreResult:
    with closing(open_runner(a.settings)) as runner, closing(open_store(a.settings.target)) as st:
        return restore_member(a.settings, runner, st, "eve", destination, **kwargs)  # type: ignore[arg-type]


def drill(a: Archived, scratch: str) -> None:
    (member,) = discover_members(a.settings)
    with closing(open_runner(a.settings)) as runner, closing(open_store(a.settings.target)) as st:
        drill_member(with_section(a.settings, "drill", scratch_dataset=scratch), runner, st, member)


@pytest.mark.parametrize("how", ["zfs-receive-by-hand", "zfs-offsite-restore"])
def test_drill_never_destroys_an_admins_dataset_at_its_scratch_path(
    archived: Archived, how: str
) -> None:
    a = archived
    scratch = f"{a.pool.name}/restore"
    mine = f"{scratch}/eve"
    if how == "zfs-offsite-restore":  # the tool's restore mark is not the drill's
        restore(a, mine, snapshot=S[1])
    else:
        run(["zfs", "create", "-p", mine])
    (a.pool.mountpoint / "restore" / "eve" / "work.txt").write_text("the admin's work")
    snapshot(mine, "admin-work")
    before = snapshots_of(mine)
    with pytest.raises(PermanentError) as caught:
        drill(a, scratch)
    assert str(caught.value) == (
        f"{mine} exists and was not created by the zfs-offsite drill (it has no zfs-offsite "
        "drill mark): move it (zfs rename), or set drill.scratch_dataset to a dataset of its "
        "own; nothing was destroyed"
    )
    assert snapshots_of(mine) == before
    assert (a.pool.mountpoint / "restore" / "eve" / "work.txt").read_text() == "the admin's work"


def test_drill_marks_what_it_creates_and_clears_its_own_leftover(archived: Archived) -> None:
    a = archived
    scratch = f"{a.pool.name}/drill"
    drill(a, scratch)
    assert mark_of(scratch).startswith("zfs-offsite drill-parent ")
    assert mark_of(scratch).endswith("\tlocal")
    # An interrupted drill's leftover: the drill's own mark, so the next drill may clear it.
    leftover = f"{scratch}/eve"
    run(["zfs", "create", "-o", f"{MARK}=zfs-offsite drill old-run", leftover])
    drill(a, scratch)
    with closing(open_runner(a.settings)) as runner:
        assert not dataset_exists(runner, leftover)


def test_restore_marks_the_destination_it_creates(archived: Archived) -> None:
    a = archived
    destination = f"{a.pool.name}/back/eve"
    restore(a, destination, run="run-42")
    assert mark_of(destination) == "zfs-offsite restore run-42\tlocal"
    assert mark_of(f"{a.pool.name}/back") != "zfs-offsite restore run-42\tlocal"


def test_force_never_replaces_a_live_member_without_the_second_flag(archived: Archived) -> None:
    a = archived
    before = snapshots_of(a.dataset)
    assert before == S  # every snapshot of it is in the archive: only membership protects it
    with pytest.raises(ConfigError) as caught:
        restore(a, a.dataset, force=True)
    assert str(caught.value) == (
        f"--force will not replace {a.dataset}: {a.dataset} is a configured member; add "
        "--destroy-live-dataset if it may be destroyed, or restore into a new dataset"
    )
    assert snapshots_of(a.dataset) == before
    assert (a.pool.mountpoint / "elabfs-eve").is_dir()


def test_force_needs_the_second_flag_for_snapshots_not_in_the_archive(
    archived: Archived,
) -> None:
    a = archived
    destination = f"{a.pool.name}/restored/eve"
    restore(a, destination, snapshot=S[0])
    restore(a, destination, force=True)  # only archived snapshots: an earlier restore
    assert snapshots_of(destination) == S
    snapshot(destination, "mine")
    with pytest.raises(ConfigError) as caught:
        restore(a, destination, force=True)
    assert str(caught.value) == (
        f"--force will not replace {destination}: {destination} holds snapshots that are not "
        "in eve's archive (mine); add --destroy-live-dataset if it may be destroyed, or "
        "restore into a new dataset"
    )
    assert snapshots_of(destination) == [*S, "mine"]
    restore(a, destination, force=True, destroy_live=True)
    assert snapshots_of(destination) == S


def test_snapshot_inside_an_i_file_is_restored_by_rolling_back(archived: Archived) -> None:
    a = archived
    destination = f"{a.pool.name}/restored/eve"
    result = restore(a, destination, snapshot=S[2])
    assert result.snapshot == S[2] and [f.filename for f in result.files][-1] == LINK
    assert result.rolled_back == [S[3]]
    assert snapshots_of(destination) == S[:3]
    assert result.guid == guid(f"{a.dataset}@{S[2]}") == guid(f"{destination}@{S[2]}")


def test_resume_into_a_dataset_not_created_by_the_tool_is_not_rolled_back(
    archived: Archived,
) -> None:
    a = archived
    destination = f"{a.pool.name}/restored/eve"
    restore(a, destination, snapshot=S[0])
    run(["zfs", "inherit", MARK, destination])  # as if received by hand, not by the tool
    with pytest.raises(PermanentError, match=rf"not rolled back to {S[2]}: zfs rollback -r"):
        restore(a, destination, snapshot=S[2], resume=True)
    assert snapshots_of(destination) == S  # received, nothing destroyed


def test_to_dir_of_a_snapshot_inside_an_i_file_ends_with_the_rollback(
    archived: Archived, tmp_path: Path
) -> None:
    a = archived
    with closing(open_store(a.settings.target)) as store:
        point, paths = download_chain(store, "eve", tmp_path / "dl", snapshot=S[2])
    assert [p.name for p in paths][-1] == LINK
    destination = f"{a.pool.name}/by-hand/eve"
    run(["zfs", "create", f"{a.pool.name}/by-hand"])
    lines = receive_commands(paths, destination, roll_back_to=S[2] if point.inside else None)
    subprocess.run(["bash", "-c", "set -euo pipefail\n" + "\n".join(lines)], check=True)
    assert snapshots_of(destination) == S[:3]
    assert guid(f"{destination}@{S[2]}") == guid(f"{a.dataset}@{S[2]}")


def test_members_are_none_where_the_source_pool_is_not_imported(archived: Archived) -> None:
    elsewhere = archived.settings.model_copy(
        update={"source": archived.settings.source.model_copy(update={"pool": "ownnopool"})}
    )
    with closing(open_runner(elsewhere)) as runner:
        assert member_datasets(elsewhere, runner) == []
        assert member_datasets(archived.settings, runner) == [archived.dataset]
