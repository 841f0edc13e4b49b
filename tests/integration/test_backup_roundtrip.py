"""Full then incremental backups of three real members over SFTP, restored with zcat/zstd."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.services import Pool
from tests.support.zfsdata import (
    MEMBERS,
    guid,
    receive_with_standard_tools,
    snapshot,
    tree_digest,
    write_member_data,
)
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.plan.backup import Action
from zfs_offsite.settings import Settings

pytestmark = pytest.mark.integration

SNAP1 = "auto-20190806.0200-1w"
SNAP2 = "auto-20190807.0200-1w"
SNAP3 = "auto-20190808.0200-1w"


def backup_all(settings: Settings) -> dict[str, Action]:
    return {m.name: backup_member(settings, m).action for m in discover_members(settings)}


def add_snapshots(pool: Pool, *names: str) -> None:
    for n, name in enumerate(names):
        for seed, member in enumerate(MEMBERS):
            write_member_data(pool.mountpoint / f"elabfs-{member}", 100 * (n + 1) + seed, 1)
            snapshot(f"{pool.name}/elabfs-{member}", name)


def check_restores(pool: Pool, restore: Pool, archive: Path, chain: list[str]) -> None:
    """Restore each member from its files alone; GUIDs and contents must match the source."""
    for member in MEMBERS:
        files = [archive / member / name.format(m=f"elabfs-{member}") for name in chain]
        target = f"{restore.name}/elabfs-{member}"
        receive_with_standard_tools(files, target)
        for snap in (SNAP1, SNAP2, SNAP3):
            assert guid(f"{target}@{snap}") == guid(f"{pool.name}/elabfs-{member}@{snap}")
        assert tree_digest(restore.mountpoint / f"elabfs-{member}") == tree_digest(
            pool.mountpoint / f"elabfs-{member}"
        )


@pytest.mark.parametrize(
    ("compression", "client"), [("zstd", "openssh"), ("gzip", "openssh"), ("zstd", "paramiko")]
)
def test_full_then_incremental_over_sftp(
    source_pool: Pool,
    pool_factory: Callable[[], Pool],
    sftp_dir: Path,
    settings_for: Callable[..., Settings],
    compression: str,
    client: str,
) -> None:
    settings = settings_for(source_pool, sftp_dir, compression=compression, client=client)
    assert backup_all(settings) == dict.fromkeys(MEMBERS, Action.FULL)
    assert backup_all(settings) == dict.fromkeys(MEMBERS, Action.UP_TO_DATE)

    add_snapshots(source_pool, SNAP2, SNAP3)
    assert backup_all(settings) == dict.fromkeys(MEMBERS, Action.INCREMENTAL)

    suffix = ".zst" if compression == "zstd" else ".gz"
    full = f"{{m}}@{SNAP1}{suffix}"
    incremental = f"{{m}}@{SNAP1}.to.{{m}}@{SNAP3}{suffix}"
    for member in MEMBERS:
        names = sorted(p.name for p in (sftp_dir / member).iterdir())
        m = f"elabfs-{member}"
        expected = [full.format(m=m), incremental.format(m=m)]
        assert names == sorted([n for e in expected for n in (e, e + ".json", e + ".sha256")])
        sums = subprocess.run(
            ["sha256sum", "-c", *[e + ".sha256" for e in expected]],
            cwd=sftp_dir / member,
            capture_output=True,
            text=True,
        )
        assert sums.returncode == 0, sums.stdout + sums.stderr
        meta = json.loads((sftp_dir / member / (expected[1] + ".json")).read_text())
        assert meta["base_guid"] == guid(f"{source_pool.name}/{m}@{SNAP1}")
        assert meta["target_guid"] == guid(f"{source_pool.name}/{m}@{SNAP3}")
        assert meta["stored_bytes"] == (sftp_dir / member / expected[1]).stat().st_size
    check_restores(source_pool, pool_factory(), sftp_dir, [full, incremental])


def test_pull_mode_runs_zfs_over_ssh(
    source_pool: Pool,
    pool_factory: Callable[[], Pool],
    sftp_dir: Path,
    settings_for: Callable[..., Settings],
) -> None:
    settings = settings_for(source_pool, sftp_dir, pull=True)
    assert settings.source.ssh_url is not None
    assert backup_all(settings) == dict.fromkeys(MEMBERS, Action.FULL)
    add_snapshots(source_pool, SNAP2, SNAP3)
    assert backup_all(settings) == dict.fromkeys(MEMBERS, Action.INCREMENTAL)
    chain = [f"{{m}}@{SNAP1}.zst", f"{{m}}@{SNAP1}.to.{{m}}@{SNAP3}.zst"]
    check_restores(source_pool, pool_factory(), sftp_dir, chain)
