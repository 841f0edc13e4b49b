"""Ownership through the real console script: drill, `restore --force`, `--snapshot` inside -I.

`protect_base = "off"`: no hold sits on the members, so nothing but the
ownership rules stands between a typo and a destroyed dataset.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import Cli
from tests.support.services import Pool, run
from tests.support.zfsdata import SNAP, guid, snapshot, write_member_data

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cli(cli: Cli) -> Cli:
    return cli.with_env(ZFS_OFFSITE_PROTECT_BASE="off")


def snapshots_of(dataset: str) -> list[str]:
    out = run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-s", "createtxg", "-r"])
    return [n.partition("@")[2] for n in out.stdout.split() if n.startswith(f"{dataset}@")]


def said(output: str) -> str:
    return " ".join(output.split())  # rich wraps long lines at the terminal width


def test_drill_leaves_an_admins_restore_at_its_scratch_path(
    cli: Cli, archive: Path, module_pool: Pool
) -> None:
    scratch = f"{module_pool.name}/restore"
    restored = f"{scratch}/alice"
    done = cli("restore", "alice", restored)
    assert done.code == 0, done.output
    (module_pool.mountpoint / "restore" / "alice" / "notes.txt").write_text("admin's work")
    snapshot(restored, "admin-work")
    drill = cli("drill", "--member", "alice", ZFS_OFFSITE_DRILL__SCRATCH_DATASET=scratch)
    assert drill.code == 1, drill.output
    assert "Traceback" not in drill.output
    assert (
        f"restore drill failed for alice: {restored} exists and was not created by the "
        "zfs-offsite drill (it has no zfs-offsite drill mark): move it (zfs rename), or set "
        "drill.scratch_dataset to a dataset of its own; nothing was destroyed"
    ) in said(drill.output)
    assert snapshots_of(restored) == [SNAP, "admin-work"]
    assert (module_pool.mountpoint / "restore" / "alice" / "notes.txt").read_text() == (
        "admin's work"
    )


def test_force_onto_a_live_member_exits_2_and_destroys_nothing(
    cli: Cli, archive: Path, module_pool: Pool
) -> None:
    member = f"{module_pool.name}/elabfs-bob"
    before = snapshots_of(member)
    done = cli("restore", "bob", member, "--force")
    assert done.code == 2, done.output
    assert "Traceback" not in done.output
    assert (
        f"--force will not replace {member}: {member} is a configured member; add "
        "--destroy-live-dataset if it may be destroyed, or restore into a new dataset"
    ) in said(done.output)
    assert snapshots_of(member) == before
    alone = cli("restore", "bob", f"{module_pool.name}/new-bob", "--destroy-live-dataset")
    assert alone.code == 2, alone.output
    assert "--destroy-live-dataset: it only widens --force" in said(alone.output)


def test_restore_of_a_snapshot_inside_an_i_file(cli: Cli, archive: Path, module_pool: Pool) -> None:
    dataset = f"{module_pool.name}/elabfs-carol"
    later = ["own-s2", "own-s3", "own-s4"]
    for seed, name in enumerate(later, 10):
        write_member_data(module_pool.mountpoint / "elabfs-carol", seed, megabytes=1)
        snapshot(dataset, name)
    done = cli("backup", "--member", "carol")
    assert done.code == 0, done.output
    assert (archive / "carol" / f"elabfs-carol@{SNAP}.to.elabfs-carol@own-s4.zst").is_file()
    destination = f"{module_pool.name}/back/carol"
    restored = cli("restore", "carol", destination, "--snapshot", "own-s3")
    assert restored.code == 0, restored.output
    assert f"restored carol@own-s3 into {destination}" in said(restored.output)
    assert f"rolled {destination} back to own-s3 (destroyed own-s4)" in said(restored.output)
    assert snapshots_of(destination) == [SNAP, "own-s2", "own-s3"]
    assert guid(f"{destination}@own-s3") == guid(f"{dataset}@own-s3")
