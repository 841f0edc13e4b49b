"""Child datasets through the real console script: plan, backup, status, drill, restore.

A child dataset is a member of its own (`nest~sub`); one the admin opted out
(`zfs-offsite:skip=on`) is listed by plan and status, never left out in silence.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.cli import Cli, base_env
from tests.support.services import Pool, run
from tests.support.zfsdata import guid, snapshot, tree_digest, write_member_data
from zfs_offsite.archive.identity import MARKER_NAME
from zfs_offsite.zfs.members import SKIP_PROPERTY

pytestmark = pytest.mark.integration

SNAP = "auto-20190806.0200-1w"
EXCLUDED = f"not backed up: excluded by {SKIP_PROPERTY}=on"


def test_child_datasets_are_members_and_an_opted_out_one_is_listed(
    pool_factory: Callable[[], Pool], tmp_path: Path
) -> None:
    pool, restore = pool_factory(), pool_factory()
    for seed, child in enumerate(("elabfs-nest", "elabfs-nest/sub", "elabfs-nest/scratch")):
        run(["zfs", "create", f"{pool.name}/{child}"])
        write_member_data(pool.mountpoint / child, seed, megabytes=1)
    run(["zfs", "set", f"{SKIP_PROPERTY}=on", f"{pool.name}/elabfs-nest/scratch"])
    for child in ("elabfs-nest", "elabfs-nest/sub", "elabfs-nest/scratch"):
        snapshot(f"{pool.name}/{child}", SNAP)
    (tmp_path / "cwd").mkdir()
    archive = tmp_path / "archive"
    cli = Cli(
        base_env(tmp_path / "prefect")
        | {
            "ZFS_OFFSITE_SOURCE__POOL": pool.name,
            "ZFS_OFFSITE_TARGET__URL": f"file://{archive}",
        },
        tmp_path / "cwd",
    )
    skipped = f"{pool.name}/elabfs-nest/scratch"

    plan = cli("plan", COLUMNS="250")
    assert plan.code == 0, plan.output
    assert "nest~sub" in plan.stdout
    assert skipped in plan.stdout and EXCLUDED in plan.stdout
    planned = json.loads(cli("plan", "--json").stdout)
    assert sorted(m["member"] for m in planned["members"]) == ["nest", "nest~sub"]
    assert [(e["dataset"], e["reason"][: len(EXCLUDED)]) for e in planned["not_backed_up"]] == [
        (skipped, EXCLUDED)
    ]

    backup = cli("backup")
    assert backup.code == 0, backup.output
    assert sorted(p.name for p in archive.iterdir()) == [MARKER_NAME, "nest", "nest~sub"]

    status = cli("status", "--json")
    assert status.code == 0, status.output
    document = json.loads(status.stdout)
    assert {m["member"]: m["status"] for m in document["members"]} == {
        "nest": "ok",
        "nest~sub": "ok",
    }
    assert [e["dataset"] for e in document["not_backed_up"]] == [skipped]
    table = cli("status", COLUMNS="250")
    assert skipped in table.stdout and "excluded" in table.stdout

    drill = cli("drill", "--member", "nest~sub")
    assert drill.code == 0, drill.output
    assert "nest~sub: restorable, proven" in drill.stdout

    parent = cli("restore", "nest", f"{restore.name}/nest")
    assert parent.code == 0, parent.output
    # the restore of nest says which members below it it does not bring, and the command
    advice = f"zfs-offsite restore 'nest~sub' {restore.name}/nest/sub"
    assert "not in this restore: 1 member(s) below nest in the archive (nest~sub)" in parent.stdout
    assert parent.stdout.rstrip().endswith(advice)
    done = cli(*advice.replace("'", "").split()[1:])
    assert done.code == 0, done.output
    assert guid(f"{restore.name}/nest/sub@{SNAP}") == guid(f"{pool.name}/elabfs-nest/sub@{SNAP}")
    assert tree_digest(restore.mountpoint / "nest/sub") == tree_digest(
        pool.mountpoint / "elabfs-nest/sub"
    )
