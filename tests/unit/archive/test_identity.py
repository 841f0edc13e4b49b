"""The archive marker and what a root without one is: the rules a backup follows before it writes.

On a real directory (LocalStore): the rules read listings, and a test of them
that never touched a file system would prove less than this one.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from zfs_offsite.archive.identity import (
    MARKER_NAME,
    ArchiveRootError,
    RootState,
    adopt_archive,
    establish,
    init_archive,
    read_marker,
    survey_root,
)
from zfs_offsite.errors import PermanentError
from zfs_offsite.remote.local import LocalStore
from zfs_offsite.values.entries import StoreEntry

SEED_FILE = "tank-elabfs-alice@daily-2025-01-01.gz"


def no_evidence() -> str | None:
    return None


def backed_up_before() -> str | None:
    return "tank/elabfs-alice (hold zfs-offsite-ab on @s1)"


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_a_first_backup_creates_the_root_and_a_private_marker(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "new" / "archive")
    establish(store, no_evidence)
    marker = read_marker(store)
    assert marker is not None and marker.how == "first backup"
    data = json.loads((tmp_path / "new" / "archive" / MARKER_NAME).read_text())
    assert data["archive_id"] == marker.archive_id and data["tool_version"]
    assert stat.S_IMODE((tmp_path / "new" / "archive" / MARKER_NAME).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "new" / "archive").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
    establish(store, backed_up_before)  # marked: no evidence asked, nothing changes
    assert read_marker(store) == marker


@pytest.mark.parametrize("mounted_point_exists", [True, False])
def test_a_missing_or_empty_root_with_evidence_fails_and_writes_nothing(
    tmp_path: Path, mounted_point_exists: bool
) -> None:
    """The disk is not mounted: the mount point is empty, or the path below it is missing."""
    mount_point = tmp_path / "mnt" / "usb"
    mount_point.mkdir(parents=True)
    root = mount_point if mounted_point_exists else mount_point / "archive"
    before = tree(tmp_path)
    with pytest.raises(ArchiveRootError) as caught:
        establish(LocalStore(root), backed_up_before)
    said = str(caught.value)
    assert f"archive root file://{root} is" in said
    assert "tank/elabfs-alice" in said and "is the disk mounted?" in said
    assert "\n" not in said
    assert tree(tmp_path) == before
    with pytest.raises(ArchiveRootError):  # nor does a dry run
        establish(LocalStore(root), backed_up_before, write=False)


def test_makedirs_never_creates_a_missing_root(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "gone")
    with pytest.raises(PermanentError, match="is missing: is the disk mounted"):
        store.makedirs("alice")
    assert not (tmp_path / "gone").exists()


def test_an_earlier_versions_archive_gets_its_marker(tmp_path: Path) -> None:
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / SEED_FILE).write_bytes(b"x")
    (tmp_path / "alice" / f"{SEED_FILE}.sha256").write_bytes(b"0" * 64)
    assert survey_root(LocalStore(tmp_path)).state is RootState.EARLIER_TOOL
    establish(LocalStore(tmp_path), backed_up_before)
    marker = read_marker(LocalStore(tmp_path))
    assert marker is not None and marker.how == "upgrade"


def test_a_seed_archive_is_refused_until_adopted(tmp_path: Path) -> None:
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / SEED_FILE).write_bytes(b"x")
    with pytest.raises(ArchiveRootError, match="run `zfs-offsite adopt` once"):
        establish(LocalStore(tmp_path), no_evidence)
    assert not (tmp_path / MARKER_NAME).exists()
    assert adopt_archive(LocalStore(tmp_path)).how == "adopt"
    establish(LocalStore(tmp_path), no_evidence)  # adopted: goes on
    with pytest.raises(ArchiveRootError, match="an archive already"):
        adopt_archive(LocalStore(tmp_path))


def test_adopt_refuses_a_missing_or_empty_root(tmp_path: Path) -> None:
    with pytest.raises(ArchiveRootError, match="missing: is the disk mounted"):
        adopt_archive(LocalStore(tmp_path / "gone"))
    (tmp_path / "lost+found").mkdir()
    with pytest.raises(ArchiveRootError, match="empty: is the disk mounted"):
        adopt_archive(LocalStore(tmp_path))
    assert not (tmp_path / MARKER_NAME).exists()


def test_init_makes_a_new_archive_and_refuses_one_with_backups(tmp_path: Path) -> None:
    assert init_archive(LocalStore(tmp_path / "a" / "b")).how == "init"
    assert (tmp_path / "a" / "b" / MARKER_NAME).is_file()
    (tmp_path / "seed" / "alice").mkdir(parents=True)
    (tmp_path / "seed" / "alice" / SEED_FILE).write_bytes(b"x")
    with pytest.raises(ArchiveRootError, match="run `zfs-offsite adopt`"):
        init_archive(LocalStore(tmp_path / "seed"))


def test_a_root_of_other_files_is_not_written_to(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"x")
    with pytest.raises(ArchiveRootError, match=r"no zfs-offsite backup \(e.g. photos/cat.jpg"):
        establish(LocalStore(tmp_path), no_evidence)
    assert not (tmp_path / MARKER_NAME).exists()


def test_an_unreadable_marker_is_named(tmp_path: Path) -> None:
    (tmp_path / MARKER_NAME).write_text("{not json")
    with pytest.raises(ArchiveRootError, match=f"{MARKER_NAME} is unreadable"):
        read_marker(LocalStore(tmp_path))


def test_files_and_directories_follow_the_umask_whatever_the_process_umask(
    tmp_path: Path,
) -> None:
    old = os.umask(0)
    try:
        private = LocalStore(tmp_path / "p")
        private.create_root()
        private.makedirs("alice/deep")
        with private.open_write("alice/f") as handle:
            handle.write(b"x")
        group = LocalStore(tmp_path / "g", umask=0o027)
        group.create_root()
        with group.open_write("f") as handle:
            handle.write(b"x")
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(tmp_path / "p") == 0o700
    assert mode(tmp_path / "p" / "alice") == 0o700
    assert mode(tmp_path / "p" / "alice" / "deep") == 0o700
    assert mode(tmp_path / "p" / "alice" / "f") == 0o600
    assert mode(tmp_path / "g") == 0o750
    assert mode(tmp_path / "g" / "f") == 0o640


def test_an_unreadable_member_directory_does_not_stop_the_survey(tmp_path: Path) -> None:
    """A member directory the login cannot list fails that member alone, later."""

    class Unlistable(LocalStore):
        def listdir(self, path: str) -> list[StoreEntry]:
            if path == "bob":
                raise PermanentError("list bob: permission denied on the backup server")
            return super().listdir(path)

    (tmp_path / "bob").mkdir()
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / SEED_FILE).write_bytes(b"x")
    assert survey_root(Unlistable(tmp_path)).state is RootState.SEED
