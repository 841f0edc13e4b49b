"""Builders of archive files and members for the pure planning tests."""

from __future__ import annotations

import dataclasses

from zfs_offsite.archive.model import ArchiveFile, Sidecar
from zfs_offsite.archive.names import BackupName, Compression, parse_backup_name
from zfs_offsite.zfs.members import Member
from zfs_offsite.zfs.model import Snapshot

DS = "tank/elabfs-a"


def snaps(*names: str, guid_base: int = 100) -> tuple[Snapshot, ...]:
    return tuple(Snapshot(DS, n, guid_base + i, 10 + i, 0) for i, n in enumerate(names))


def member(*names: str, encryption: str | None = None) -> Member:
    return Member("a", DS, "elabfs-a", snaps(*names), encryption=encryption)


def seed_file(filename: str) -> ArchiveFile:
    name = parse_backup_name(filename)
    assert name is not None
    return ArchiveFile(filename, name, 10, 0.0)


def sidecar(
    dataset: str,
    snapshot: str,
    guid: int,
    base: str | None = None,
    base_guid: int | None = None,
    creation: int | None = None,
    *,
    stored_bytes: int = 1,
    started: str = "",
    finished: str = "",
    raw: bool = False,
) -> Sidecar:
    """A sidecar with the given identity and placeholder figures (the upload's, if given)."""
    return Sidecar(
        dataset=dataset,
        snapshot=snapshot,
        snapshot_guid=guid,
        compression="zstd",
        sha256="0" * 64,
        raw_bytes=1,
        stored_bytes=stored_bytes,
        started=started,
        finished=finished,
        tool_version="t",
        base=base,
        base_guid=base_guid,
        snapshot_creation=creation,
        raw=raw,
    )


def new_file(snapshot: Snapshot, base: Snapshot | None = None, *, raw: bool = False) -> ArchiveFile:
    name = BackupName("elabfs-a", snapshot.name, Compression.ZSTD, base.name if base else None)
    identity = sidecar(
        DS,
        snapshot.name,
        snapshot.guid,
        base.name if base else None,
        base.guid if base else None,
        raw=raw,
    )
    return ArchiveFile(name.filename, name, 1, 0.0, identity)


def at(file: ArchiveFile, when: float) -> ArchiveFile:
    """The file as if its upload finished at `when` (the chain order and ages read mtime)."""
    return dataclasses.replace(file, mtime=when)


def corrupt(file: ArchiveFile) -> ArchiveFile:
    """The file as a verify run leaves it after a checksum mismatch."""
    return dataclasses.replace(file, corrupt="sha256 mismatch")
