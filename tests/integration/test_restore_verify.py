"""Restore, verify and drill against a mixed archive on real zfs-fuse and the real sshd.

The archive of member `dora` mixes eras: a seed-made gzip full without
sidecars, a gzip incremental, then zstd incrementals (one `-I` across an
intermediate snapshot), all over SFTP.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.services import Pool, ensure_test_user
from tests.support.settings_edit import with_section
from tests.support.zfsdata import (
    create_member,
    guid,
    gzip_send,
    snapshot,
    tree_digest,
    write_member_data,
)
from zfs_offsite.connect import open_runner, open_store, source_endpoint
from zfs_offsite.errors import ChainError, IntegrityError
from zfs_offsite.jobs.archive_root import adopt
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.jobs.drill import drill_member, read_records
from zfs_offsite.jobs.restore import (
    download_chain,
    receive_commands,
    restore_member,
)
from zfs_offsite.jobs.verify import Verdict, verify_member
from zfs_offsite.plan.backup import Action
from zfs_offsite.settings import Settings
from zfs_offsite.zfs.destination import dataset_exists

pytestmark = pytest.mark.integration

S = [f"auto-2019080{d}.0200-1w" for d in range(6, 10)] + ["auto-20190810.0200-1w"]
CHAIN = [
    f"elabfs-dora@{S[0]}.gz",
    f"elabfs-dora@{S[0]}.to.elabfs-dora@{S[1]}.gz",
    f"elabfs-dora@{S[1]}.to.elabfs-dora@{S[2]}.zst",
    f"elabfs-dora@{S[2]}.to.elabfs-dora@{S[4]}.zst",
]


@dataclass
class Mixed:
    pool: Pool
    archive: Path
    settings: Settings  # zstd, over SFTP
    dataset: str

    def path(self, index: int) -> Path:
        return self.archive / "dora" / CHAIN[index]


def add_snapshot(pool: Pool, dataset: str, name: str, seed: int) -> None:
    write_member_data(pool.mountpoint / "elabfs-dora", seed, 1)
    snapshot(dataset, name)


@pytest.fixture
def mixed(
    pool_factory: Callable[[], Pool], sftp_dir: Path, settings_for: Callable[..., Settings]
) -> Mixed:
    pool = pool_factory()
    dataset = create_member(pool.name, "dora")
    add_snapshot(pool, dataset, S[0], 0)
    member_dir = sftp_dir / "dora"
    member_dir.mkdir()
    gzip_send(["zfs", "send", f"{dataset}@{S[0]}"], member_dir / CHAIN[0])
    user = ensure_test_user()
    for path in (member_dir, *member_dir.iterdir()):
        os.chown(path, user.pw_uid, user.pw_gid)

    def backup(compression: str) -> Action:
        settings = settings_for(pool, sftp_dir, compression=compression)
        (member,) = discover_members(settings)
        return backup_member(settings, member).action

    adopt(settings_for(pool, sftp_dir))  # the seed-made archive, adopted as README says
    add_snapshot(pool, dataset, S[1], 1)
    assert backup("gzip") is Action.INCREMENTAL
    add_snapshot(pool, dataset, S[2], 2)
    assert backup("zstd") is Action.INCREMENTAL
    add_snapshot(pool, dataset, S[3], 3)
    add_snapshot(pool, dataset, S[4], 4)
    assert backup("zstd") is Action.INCREMENTAL
    names = sorted(p.name for p in member_dir.iterdir() if p.suffix in (".gz", ".zst"))
    assert names == sorted(CHAIN)
    return Mixed(pool, sftp_dir, settings_for(pool, sftp_dir), dataset)


def restore(m: Mixed, destination: str, **kwargs: object) -> object:
    with closing(open_runner(m.settings)) as runner, closing(open_store(m.settings.target)) as st:
        return restore_member(m.settings, runner, st, "dora", destination, **kwargs)  # type: ignore[arg-type]


def assert_same(m: Mixed, restored: str, snapshots: list[str]) -> None:
    for snap in snapshots:
        assert guid(f"{restored}@{snap}") == guid(f"{m.dataset}@{snap}")


@pytest.mark.parametrize("client", ["openssh", "paramiko"])
def test_restore_newest_of_a_mixed_chain(
    m_restore: tuple[Mixed, Pool], settings_for: Callable[..., Settings], client: str
) -> None:
    m, target_pool = m_restore
    m.settings = settings_for(m.pool, m.archive, client=client)
    destination = f"{target_pool.name}/dora"
    result = restore(m, destination)
    assert result.snapshot == S[4] and [f.filename for f in result.files] == CHAIN
    assert [f.verified for f in result.files] == [False, True, True, True]
    assert_same(m, destination, S)  # S[3] came as an intermediate of the -I file
    assert tree_digest(target_pool.mountpoint / "dora") == tree_digest(
        m.pool.mountpoint / "elabfs-dora"
    )
    with pytest.raises(Exception, match=f"destination {destination} exists"):
        restore(m, destination)


@pytest.fixture
def m_restore(mixed: Mixed, pool_factory: Callable[[], Pool]) -> tuple[Mixed, Pool]:
    return mixed, pool_factory()


def test_restore_intermediate_snapshot(m_restore: tuple[Mixed, Pool]) -> None:
    m, target_pool = m_restore
    destination = f"{target_pool.name}/dora"
    result = restore(m, destination, snapshot=S[2])
    assert [f.filename for f in result.files] == CHAIN[:3]
    assert_same(m, destination, S[:3])
    assert not dataset_exists(open_runner(m.settings), f"{destination}@{S[4]}")


def test_restore_in_pull_mode(
    m_restore: tuple[Mixed, Pool], settings_for: Callable[..., Settings]
) -> None:
    m, target_pool = m_restore
    m.settings = settings_for(m.pool, m.archive, pull=True)
    destination = f"{target_pool.name}/dora"
    restore(m, destination)
    assert_same(m, destination, S)


@pytest.mark.parametrize("pull", [False, True], ids=["push", "pull"])
def test_download_to_dir_restores_with_standard_tools(
    m_restore: tuple[Mixed, Pool],
    settings_for: Callable[..., Settings],
    tmp_path: Path,
    pull: bool,
) -> None:
    """The printed lines run as printed, into a dataset whose parents do not exist yet.

    In pull mode the pool is on the NAS (here the test sshd): the zfs lines go through ssh.
    """
    m, target_pool = m_restore
    settings = settings_for(m.pool, m.archive, pull=pull)
    with closing(open_store(settings.target)) as store:
        _point, paths = download_chain(store, "dora", tmp_path / "dl")
    assert [p.name for p in paths] == CHAIN
    destination = f"{target_pool.name}/pul-restored/deep/dora"
    nas = source_endpoint(settings.source, settings.target.timeout)
    lines = receive_commands(paths, destination, nas=nas)
    zfs_lines = [line for line in lines if "zfs " in line]
    assert zfs_lines[0].rstrip("'").endswith(f"zfs create -p {target_pool.name}/pul-restored/deep")
    ssh = f"ssh -i {settings.source.key_file} -p "
    assert all((ssh in line) is pull for line in zfs_lines)
    subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(lines)], check=True)
    assert_same(m, destination, S)


def truncate(path: Path) -> None:
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size - 100)


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "index", "message"),
    [
        (truncate, 3, "bytes stored, the sidecar records"),
        (flip_byte, 3, "corrupt"),
        (flip_byte, 0, "corrupt|END record"),  # seed-era gzip: no sidecar, gzip itself objects
        (Path.unlink, 1, f"needs a file whose target is {S[1]}"),
    ],
    ids=["truncated", "flipped-byte", "flipped-byte-seed-gz", "deleted-middle-link"],
)
def test_damage_is_caught_by_verify_and_restore(
    m_restore: tuple[Mixed, Pool],
    damage: Callable[[Path], None],
    index: int,
    message: str,
) -> None:
    m, target_pool = m_restore
    with closing(open_store(m.settings.target)) as store:
        assert (
            verify_member(m.settings, store, "dora").verdict is Verdict.UNVERIFIED
        )  # seed-era full
        damage(m.path(index))
        report = verify_member(m.settings, store, "dora")
    by_name = {f.filename: f for f in report.files}
    if damage is Path.unlink:
        assert report.verdict is Verdict.BROKEN_CHAIN
        assert message in by_name[CHAIN[2]].detail
    else:
        assert by_name[CHAIN[index]].verdict is Verdict.CORRUPT
        assert report.verdict is Verdict.CORRUPT
        assert (m.path(index).parent / (CHAIN[index] + ".corrupt")).exists()
        assert m.path(index).exists()  # reported, never deleted
        for later in CHAIN[index + 1 :]:
            assert by_name[later].verdict is Verdict.BROKEN_CHAIN

    destination = f"{target_pool.name}/dora"
    # The marked file is no link: restore refuses before receiving anything.
    with pytest.raises(ChainError, match=message if damage is Path.unlink else "marked corrupt"):
        restore(m, destination)
    assert not dataset_exists(open_runner(m.settings), destination)


def test_unmarked_corruption_stops_the_receive_before_the_last_snapshot(
    m_restore: tuple[Mixed, Pool],
) -> None:
    m, target_pool = m_restore
    flip_byte(m.path(3))  # not verified yet: restore meets it while streaming
    destination = f"{target_pool.name}/dora"
    with pytest.raises(IntegrityError, match="corrupt") as caught:
        restore(m, destination)
    assert "nothing of this file was committed" in str(caught.value)
    assert_same(m, destination, S[:3])  # the sound links stay received
    runner = open_runner(m.settings)
    assert not dataset_exists(runner, f"{destination}@{S[4]}")


def test_planner_builds_on_the_newest_sound_base_after_verify(mixed: Mixed) -> None:
    flip_byte(mixed.path(3))
    with closing(open_store(mixed.settings.target)) as store:
        verify_member(mixed.settings, store, "dora")
    add_snapshot(mixed.pool, mixed.dataset, "auto-20190811.0200-1w", 5)
    (member,) = discover_members(mixed.settings)
    result = backup_member(mixed.settings, member)
    assert result.action is Action.INCREMENTAL and result.base == S[2]


def test_drill_proves_the_newest_snapshot_and_cleans_up(mixed: Mixed) -> None:
    scratch = f"{mixed.pool.name}/drill"
    (member,) = discover_members(mixed.settings)
    with closing(open_runner(mixed.settings)) as runner:
        with closing(open_store(mixed.settings.target)) as store:
            drilling = with_section(mixed.settings, "drill", scratch_dataset=scratch)
            record = drill_member(drilling, runner, store, member)
            assert read_records(store)["dora"] == record  # the job recorded its proof
        assert not dataset_exists(runner, f"{scratch}/dora")
    assert record.snapshot == S[4] and record.guid == guid(f"{mixed.dataset}@{S[4]}")
    assert record.guid_checked_against == "source" and record.files == 4


def test_resume_continues_after_the_links_already_received(
    m_restore: tuple[Mixed, Pool],
) -> None:
    m, target_pool = m_restore
    destination = f"{target_pool.name}/dora"
    restore(m, destination, snapshot=S[1])  # as if the connection dropped after two links
    with pytest.raises(Exception, match="pass --resume"):
        restore(m, destination)
    result = restore(m, destination, resume=True)
    assert [f.filename for f in result.files] == CHAIN[2:]
    assert_same(m, destination, S)
