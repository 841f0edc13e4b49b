"""What ZFS holds, as plain values: datasets, snapshots, bookmarks, features."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from zfs_offsite.errors import ConfigError

# What zfs_namecheck accepts in a component (OpenZFS and zfs-fuse alike); a pool starts
# with a letter. Longer than ZFS's 255 characters is refused too.
_COMPONENT = re.compile(r"[A-Za-z0-9_.: -]+")
MAX_DATASET_NAME = 255


def check_dataset_name(text: str, where: str) -> str:
    """`text` if ZFS can create a dataset of that name below a pool; else a one-line ConfigError.

    Checked before anything is read or received, so a typo such as `tank/x@s1`
    or `tank//x` is bad input (exit 2), not a `zfs receive` failure at the end
    of a download.
    """
    parts = text.split("/")
    fits = (
        len(parts) >= 2
        and len(text) <= MAX_DATASET_NAME
        and parts[0][:1].isascii()
        and parts[0][:1].isalpha()
        and all(_COMPONENT.fullmatch(p) and p not in {".", ".."} for p in parts)
    )
    if fits:
        return text
    shown = text if len(text) <= 60 else text[:57] + "..."
    raise ConfigError(
        f"{where} {shown!r} is not a dataset ZFS can create: write pool/path, e.g. "
        "tank/restore/alice (letters, digits, space and _ . : -; no @, # or empty part)"
    )


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
