"""zfs-fuse has no `zfs send -c`: the probe says so, and a compressed dataset still backs up.

source.compressed_send defaults to auto, so this is the path every zfs-fuse
NAS takes; the OpenZFS side is tests/openzfs/test_compressed_send.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from tests.support.services import Pool, run
from tests.support.zfsdata import (
    create_member,
    guid,
    receive_with_standard_tools,
    snapshot,
    tree_digest,
    write_member_data,
)
from zfs_offsite.connect import open_runner
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.plan.backup import Action
from zfs_offsite.settings import Settings
from zfs_offsite.zfs.commands import detect_compressed_send

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("pull", [False, True], ids=["local", "pull"])
def test_zfs_fuse_backs_up_a_compressed_dataset_with_plain_sends(
    pool_factory: Callable[[], Pool],
    settings_for: Callable[..., Settings],
    tmp_path: Path,
    pull: bool,
) -> None:
    pool = pool_factory()
    dataset = create_member(pool.name, "ana")
    # gzip: a compression auto would send `-c` for, so the probe is asked and says no.
    run(["zfs", "set", "compression=gzip", dataset])
    write_member_data(pool.mountpoint / "elabfs-ana", 7, 1)
    snapshot(dataset, "s1")
    archive = tmp_path / "archive"
    settings = settings_for(pool, archive, local=True, pull=pull)
    assert settings.source.compressed_send == "auto"
    with closing(open_runner(settings)) as runner:
        assert detect_compressed_send(runner) is False

    (member,) = discover_members(settings)
    result = backup_member(settings, member)
    assert result.action is Action.FULL and result.stream is not None
    stored = archive / "ana" / "elabfs-ana@s1.zst"
    sidecar = json.loads(stored.with_name(stored.name + ".json").read_text())
    # A plain stream carries every file's bytes uncompressed; a `-c` one would not.
    logical = sum(f.stat().st_size for f in (pool.mountpoint / "elabfs-ana").iterdir())
    assert sidecar["raw_bytes"] == result.stream.raw_bytes > logical

    receive_with_standard_tools([stored], f"{pool.name}/back")
    assert guid(f"{pool.name}/back@s1") == guid(f"{dataset}@s1")
    assert tree_digest(pool.mountpoint / "back") == tree_digest(pool.mountpoint / "elabfs-ana")
