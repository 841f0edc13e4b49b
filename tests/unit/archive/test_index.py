"""Reading a member's directory: a sidecar is trusted only for the file it was written for."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.archive_files import sidecar
from zfs_offsite.archive.index import (
    archived_members,
    dataset_parts,
    linked_members,
    read_member_archive,
)
from zfs_offsite.archive.model import checksum_line
from zfs_offsite.archive.verify_rotation import VERIFY_RECORD
from zfs_offsite.remote.local import LocalStore
from zfs_offsite.zfs.members import select_members
from zfs_offsite.zfs.model import Dataset


def stored(root: Path, member: str, filename: str, dataset: str) -> None:
    directory = root / member
    directory.mkdir(parents=True, exist_ok=True)
    (directory / filename).write_bytes(b"x")
    (directory / f"{filename}.json").write_bytes(sidecar(dataset, "s1", 11).to_json())
    (directory / f"{filename}.sha256").write_bytes(checksum_line("0" * 64, filename))


def test_a_file_from_another_members_directory_is_not_trusted(tmp_path: Path) -> None:
    """bob's full copied over alice's: restoring it would give bob's data as alice's."""
    stored(tmp_path, "alice", "elabfs-alice@s1.zst.age", "tank/elabfs-bob")
    (file,) = read_member_archive(LocalStore(tmp_path), "alice", "elabfs-alice").files
    assert file.sidecar is None
    assert file.sidecar_problem is not None
    assert "records dataset tank/elabfs-bob, but the file name says elabfs-alice" in (
        file.sidecar_problem
    )


def test_the_members_own_sidecar_is_trusted(tmp_path: Path) -> None:
    stored(tmp_path, "alice", "elabfs-alice@s1.zst", "tank/elabfs-alice")
    (file,) = read_member_archive(LocalStore(tmp_path), "alice", "elabfs-alice").files
    assert file.sidecar is not None and file.sidecar_problem is None


def test_nested_and_other_pool_datasets_name_their_files_as_discovery_does() -> None:
    assert "elabfs-a~sub" in dataset_parts("tank/elabfs-a/sub")
    assert "other~elabfs-a" in dataset_parts("other/elabfs-a")


def test_hidden_directories_and_lost_and_found_at_the_root_are_no_members(
    tmp_path: Path,
) -> None:
    """A directory in the verify record's place, ext4's lost+found and a NAS's `.snapshot`
    were verified as members ("no backups") and failed every run."""
    for name in (VERIFY_RECORD, "lost+found", ".snapshot", "..dots", "alice", "bob.2"):
        (tmp_path / name).mkdir()
    (tmp_path / ".zfs-offsite-drills.json").write_text("{}")
    (tmp_path / ".hidden-link").symlink_to(tmp_path / "alice")
    (tmp_path / "linked").symlink_to(tmp_path / "alice")
    store = LocalStore(tmp_path)
    assert sorted(archived_members(store)) == ["alice", "bob.2"]
    assert list(linked_members(store)) == ["linked"]


@pytest.mark.parametrize(
    "part",
    [".x", "..dots", ".zfs-offsite-verified.json", "lost+found", ".", ".."],
)
def test_no_dataset_gives_a_member_name_that_verify_and_prune_leave_alone(part: str) -> None:
    dataset = f"tank/elabfs-{part}"
    (member,) = select_members({dataset: Dataset(dataset, 1)}, "tank", "elabfs-", [], None)
    assert member.error is not None
    assert member.error.startswith(f"dataset {dataset} gives no usable member name ({part!r})")
    assert member.error.endswith(
        "rename the dataset, or leave it out by listing the datasets to back up in source.datasets"
    )


def test_every_member_name_backup_can_give_is_listed_from_the_root(tmp_path: Path) -> None:
    """Nothing real is skipped: each usable member's directory is a member to verify/prune."""
    parts = ["a", "a.b", "x.", "a..b", "lost+found2", "a~sub", "_x", "-x", "x:y", "x y", "~.x"]
    datasets = {f"tank/elabfs-{p}": Dataset(f"tank/elabfs-{p}", n) for n, p in enumerate(parts)}
    members = select_members(datasets, "tank", "elabfs-", [], None)
    usable = [m.name for m in members if m.error is None]
    assert sorted(usable) == sorted(parts)
    for name in usable:
        (tmp_path / name).mkdir()
    assert sorted(archived_members(LocalStore(tmp_path))) == sorted(usable)
