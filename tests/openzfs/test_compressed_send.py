"""`zfs send -c` on real OpenZFS, in pull mode: smaller streams, the same restored data.

zfs-fuse has no `-c` (tests/integration/test_compressed_send_probe.py), so this
runs only against the VM (fixtures: conftest.py) and is skipped, with the
reason printed, when the VM is down.
"""

from __future__ import annotations

import json
import shlex
from contextlib import closing
from pathlib import Path

import pytest

from tests.support.openzfs_vm import add_snapshot, tree_digest, vm_settings
from zfs_offsite.connect import open_store
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.jobs.restore import restore_member, snapshot_guid
from zfs_offsite.plan.backup import Action
from zfs_offsite.zfs.commands import detect_compressed_send
from zfs_offsite.zfs.runner import Runner

pytestmark = [pytest.mark.openzfs_vm]

MIB = 1024 * 1024


def dataset_with_logs(runner: Runner, dataset: str, compression: str, megabytes: int) -> None:
    """A dataset with this `compression` holding `megabytes` of text-like log lines."""
    runner.run(["zfs", "create", "-o", f"compression={compression}", dataset])
    append_logs(runner, dataset, "log-1.txt", megabytes)


def append_logs(runner: Runner, dataset: str, name: str, megabytes: int) -> None:
    """Log lines with a counter: compressible, but not so much that a 128 KiB record fits in a
    block pointer (`embedded_data`, which `send -c` without `-e` sends decompressed)."""
    path = shlex.quote(f"/{dataset}/{name}")
    line = "2019-08-06 02:00 sample=%08g lab member measurement notes"
    lines = megabytes * MIB // len(line % 0 + "\n")
    runner.run(["sh", "-c", f"seq -f {shlex.quote(line)} 1 {lines} > {path}"])


def logical_bytes(runner: Runner, directory: str) -> int:
    out = runner.run(["sh", "-c", 'du -b -s --apparent-size "$1" | cut -f1', "sh", directory])
    return int(out.stdout)


def test_pull_backup_sends_compressed_blocks_and_restores_equal(
    vm: tuple[Runner, str, Path], tmp_path: Path
) -> None:
    runner, pool, known_hosts = vm
    dataset, restored = f"{pool}/elabfs-cy", f"{pool}/restored"
    archive = tmp_path / "archive"
    settings = vm_settings(pool, archive, known_hosts)
    assert settings.source.compressed_send == "auto"
    assert detect_compressed_send(runner)

    dataset_with_logs(runner, dataset, "zstd", 16)
    add_snapshot(runner, dataset, "s1", 1)
    (member,) = discover_members(settings)
    full = backup_member(settings, member)
    assert full.action is Action.FULL and full.stream is not None
    # The zstd blocks went as they are: the stream is far smaller than the files
    # (a plain send carries all 17 MiB), and `send -nP -c` estimated that stream.
    assert full.stream.raw_bytes < logical_bytes(runner, f"/{dataset}") / 2
    assert full.estimated_bytes is not None
    assert abs(full.estimated_bytes - full.stream.raw_bytes) < full.stream.raw_bytes * 0.2

    append_logs(runner, dataset, "log-2.txt", 8)
    add_snapshot(runner, dataset, "s2", 1)
    (member,) = discover_members(settings)
    incremental = backup_member(settings, member)
    assert (incremental.action, incremental.base) == (Action.INCREMENTAL, "s1")
    assert incremental.stream is not None and incremental.stream.raw_bytes < 5 * MIB
    names = ["elabfs-cy@s1.zst", "elabfs-cy@s1.to.elabfs-cy@s2.zst"]
    for name in names:
        sidecar = json.loads((archive / "cy" / f"{name}.json").read_text())
        assert sidecar["raw"] is False and sidecar["raw_bytes"] > 0

    with closing(open_store(settings.target)) as store:
        result = restore_member(settings, runner, store, "cy", restored)
    assert [f.filename for f in result.files] == names and not result.needs_key
    for snap in ("s1", "s2"):
        guid = snapshot_guid(runner, f"{restored}@{snap}")
        assert guid is not None and guid == snapshot_guid(runner, f"{dataset}@{snap}")
    source_tree = tree_digest(runner, f"/{dataset}")
    assert "./log-2.txt" in source_tree and "./s2.bin" in source_tree
    assert tree_digest(runner, f"/{restored}") == source_tree


@pytest.mark.parametrize(
    ("compression", "setting", "compressed"),
    [("lz4", "auto", False), ("lz4", "always", True), ("zstd", "never", False)],
)
def test_setting_and_dataset_compression_choose_the_stream(
    vm: tuple[Runner, str, Path], tmp_path: Path, compression: str, setting: str, compressed: bool
) -> None:
    """auto leaves lz4 blocks to our zstd, always sends them as they are, never sends plain."""
    runner, pool, known_hosts = vm
    dataset = f"{pool}/elabfs-dee"
    dataset_with_logs(runner, dataset, compression, 16)
    add_snapshot(runner, dataset, "s1", 1)
    archive = tmp_path / "archive"
    settings = vm_settings(pool, archive, known_hosts, compressed_send=setting)
    (member,) = discover_members(settings)
    full = backup_member(settings, member)
    assert full.action is Action.FULL and full.stream is not None
    logical = logical_bytes(runner, f"/{dataset}")
    if compressed:
        assert full.stream.raw_bytes < logical / 2
    else:
        assert full.stream.raw_bytes > logical
    with closing(open_store(settings.target)) as store:
        restore_member(settings, runner, store, "dee", f"{pool}/restored")
    assert tree_digest(runner, f"/{pool}/restored") == tree_digest(runner, f"/{dataset}")
