"""What ZFS holds, as plain values: datasets, snapshots, bookmarks, features."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Snapshot:
    """A snapshot with the identity (GUID) and order (createtxg) that names lack."""

    dataset: str
    name: str
    guid: int
    createtxg: int
    creation: int
    userrefs: int | None = None  # holds on it; None where the ZFS has no holds

    @property
    def full_name(self) -> str:
        return f"{self.dataset}@{self.name}"


@dataclass(frozen=True)
class Bookmark:
    """A bookmark (`ds#name`): a snapshot's identity without its data.

    It can only be the base of an incremental send (`zfs send -i`), never sent,
    held or received; so it is its own type, never mistaken for a `Snapshot`.
    """

    dataset: str
    name: str
    guid: int  # the GUID of the snapshot it was made from
    createtxg: int
    creation: int

    @property
    def full_name(self) -> str:
        return f"{self.dataset}#{self.name}"


@dataclass(frozen=True)
class Dataset:
    """A filesystem or volume with its snapshots, oldest first by createtxg."""

    name: str
    guid: int
    properties: dict[str, str] = field(default_factory=dict)
    snapshots: tuple[Snapshot, ...] = ()
    bookmarks: tuple[Bookmark, ...] = ()
    # The `encryption` property: "off", a cipher ("aes-256-gcm"), or None where
    # this ZFS has no such property (zfs-fuse, and any ZFS before native encryption).
    encryption: str | None = None
    kind: str = "filesystem"  # or "volume" (a zvol): its send stream is an ordinary one

    @property
    def natively_encrypted(self) -> bool:
        return is_natively_encrypted(self.encryption)


def is_natively_encrypted(encryption: str | None) -> bool:
    """True for an `encryption` value naming a cipher: `zfs send -w` keeps it encrypted."""
    return encryption not in (None, "off", "-", "")


@dataclass(frozen=True)
class ZfsFeatures:
    """What the ZFS on a host can do; zfs-fuse lacks most of it."""

    version: str | None
    send_estimate: bool
    bookmarks: bool
    holds: bool = True  # user holds exist since pool version 18, zfs-fuse included

    @property
    def is_openzfs(self) -> bool:
        return self.version is not None
