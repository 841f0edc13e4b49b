"""Reading a member's directory: a sidecar is trusted only for the file it was written for."""

from __future__ import annotations

from pathlib import Path

from tests.support.archive_files import sidecar
from zfs_offsite.archive.index import dataset_parts, read_member_archive
from zfs_offsite.archive.model import checksum_line
from zfs_offsite.remote.local import LocalStore


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
