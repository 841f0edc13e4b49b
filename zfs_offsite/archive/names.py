"""Backup file names: the seed's layout (`ds@snap.gz`, `ds@a.to.ds@b.gz`) plus `.zst`.

An age-encrypted file has `.age` after the compression suffix (`ds@a.to.ds@b.zst.age`):
the name says how to read the bytes back, like the compression does, and is no part
of the file's identity (the planner links plain and encrypted files alike).

Parsing splits on `@` and `.to.` only, never on the first dot, because
snapshot names such as `auto-20190806.0200-1w` contain dots.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from zfs_offsite.errors import ConfigError
from zfs_offsite.values.partials import ATTEMPT, PARTIAL_SUFFIX

INCREMENTAL_SEPARATOR = ".to."
ENCRYPTED_SUFFIX = ".age"
# A nested dataset's `/` in file names; not allowed in ZFS names, so it cannot collide.
NESTED_SEPARATOR = "~"
CHECKSUM_SUFFIX = ".sha256"
METADATA_SUFFIX = ".json"
CORRUPT_SUFFIX = ".corrupt"  # written by verify next to a file that failed its checks
# Files of the tool's own in a member directory (the writer lock); never backups.
TOOL_FILE_PREFIX = ".zfs-offsite"

# What ZFS allows in a name component, plus `~` for nested datasets (see zfs/members.py).
_COMPONENT = re.compile(r"[A-Za-z0-9_.:+~ -]+")


class Compression(StrEnum):
    """Stream compressions the archive can hold."""

    GZIP = "gzip"
    ZSTD = "zstd"

    @property
    def suffix(self) -> str:
        return ".gz" if self is Compression.GZIP else ".zst"


# What a filesystem puts at the target's root (ext4's mount root); never a member.
LOST_AND_FOUND = "lost+found"


def is_safe_component(text: str) -> bool:
    """True if `text` can be used as one path component on the backup server."""
    return bool(_COMPONENT.fullmatch(text)) and text not in {".", ".."}


def members_below(archived: list[str], member: str) -> list[str]:
    """The archived members for datasets below `member`'s (`nest~sub`, `nest~sub~x` of `nest`).

    Each is restored on its own: a member's stream carries none of its children.
    """
    return sorted(n for n in archived if n.startswith(member + NESTED_SEPARATOR))


def below_destination(member: str, child: str, destination: str) -> str:
    """Where `child` (a member below `member`) goes when `member` is restored to `destination`."""
    return (
        destination
        + "/"
        + child.removeprefix(member + NESTED_SEPARATOR).replace(NESTED_SEPARATOR, "/")
    )


def is_member_name(text: str) -> bool:
    """True if `text` can name a member directory at the target's root.

    Hidden names (the tool's own `.zfs-offsite-*` records, a NAS's `.snapshot`)
    and `lost+found` are left alone there by verify and prune, so no member
    may be called that.
    """
    return is_safe_component(text) and not text.startswith(".") and text != LOST_AND_FOUND


def check_member_name(text: str, where: str) -> str:
    """`text`, if it can name a member; else ConfigError in one line naming `where` and the rule.

    Every command that takes a member name (backup, plan, verify, prune, drill,
    restore, history) checks it here first: a name no member can have is bad
    input (exit 2), never a job that ran and found nothing.
    """
    if is_member_name(text):
        return text
    shown = text if len(text) <= 60 else text[:57] + "..."
    raise ConfigError(
        f"{where} {shown!r} cannot name a member: a member name is letters A-Z a-z, digits, "
        "space and _ . : + ~ - (not starting with a dot, not lost+found); "
        "`zfs-offsite status` lists the members"
    )


@dataclass(frozen=True)
class BackupName:
    """What a backup file's name says: dataset part, base (for incrementals), snapshot."""

    dataset: str
    snapshot: str
    compression: Compression
    base: str | None = None
    encrypted: bool = False  # age-encrypted after compression: `.zst.age`

    @property
    def is_full(self) -> bool:
        return self.base is None

    @property
    def suffix(self) -> str:
        """`.zst`, `.gz`, `.zst.age` or `.gz.age`."""
        return self.compression.suffix + (ENCRYPTED_SUFFIX if self.encrypted else "")

    @property
    def filename(self) -> str:
        snapshot = f"{self.dataset}@{self.snapshot}"
        if self.base is None:
            return snapshot + self.suffix
        return f"{self.dataset}@{self.base}{INCREMENTAL_SEPARATOR}{snapshot}{self.suffix}"


def parse_backup_name(filename: str) -> BackupName | None:
    """Parse a backup file name; None if it is not one (the caller warns and keeps it)."""
    encrypted = filename.endswith(ENCRYPTED_SUFFIX)
    if encrypted:
        filename = filename[: -len(ENCRYPTED_SUFFIX)]
    for compression in Compression:
        if filename.endswith(compression.suffix):
            stem = filename[: -len(compression.suffix)]
            break
    else:
        return None
    dataset, at, rest = stem.partition("@")
    if not at or not is_safe_component(dataset):
        return None
    if "@" not in rest:
        return _checked(BackupName(dataset, rest, compression, encrypted=encrypted))
    base, at2, snapshot = rest.partition("@")
    marker = f"{INCREMENTAL_SEPARATOR}{dataset}"
    if not at2 or "@" in snapshot or not base.endswith(marker):
        return None
    base = base[: -len(marker)]
    return _checked(BackupName(dataset, snapshot, compression, base=base, encrypted=encrypted))


def _checked(name: BackupName) -> BackupName | None:
    parts = [name.snapshot] if name.base is None else [name.base, name.snapshot]
    return name if all(is_safe_component(p) for p in parts) else None


class Kind(StrEnum):
    """What a directory entry on the backup server is."""

    BACKUP = "backup"
    PARTIAL = "partial"
    CHECKSUM = "checksum"
    METADATA = "metadata"
    CORRUPT_MARK = "corrupt mark"
    TOOL = "tool file"
    UNKNOWN = "unknown"


# Files that belong to a backup file and go with it: `<file><suffix>`.
SIDECAR_SUFFIXES = {
    Kind.CHECKSUM: CHECKSUM_SUFFIX,
    Kind.METADATA: METADATA_SUFFIX,
    Kind.CORRUPT_MARK: CORRUPT_SUFFIX,
}


def classify(filename: str) -> tuple[Kind, BackupName | None]:
    """Say what a file in a member directory is and, if related, which backup it belongs to."""
    if filename.startswith(TOOL_FILE_PREFIX):
        return Kind.TOOL, None
    for kind, suffix in ((Kind.PARTIAL, PARTIAL_SUFFIX), *SIDECAR_SUFFIXES.items()):
        if filename.endswith(suffix):
            owner = filename[: -len(suffix)]
            if kind is Kind.PARTIAL:
                # x.zst.<attempt>.partial, or a sidecar being written: x.zst.json.<attempt>.partial
                owner_kind, owner_name = classify(ATTEMPT.sub("", owner))
                return (
                    (Kind.PARTIAL, owner_name)
                    if owner_kind is not Kind.UNKNOWN
                    else (
                        Kind.UNKNOWN,
                        None,
                    )
                )
            name = parse_backup_name(owner)
            return (kind, name) if name else (Kind.UNKNOWN, None)
    name = parse_backup_name(filename)
    return (Kind.BACKUP, name) if name else (Kind.UNKNOWN, None)


def partial_of(filename: str) -> tuple[Kind, BackupName | None]:
    """What a partial file becomes when its upload commits: the backup file itself
    (`Kind.BACKUP`), one of its sidecars (`Kind.METADATA`…), and whose backup."""
    return classify(ATTEMPT.sub("", filename.removesuffix(PARTIAL_SUFFIX)))


def sidecar_names(filename: str) -> list[str]:
    """Every sidecar name a backup file can have."""
    return [filename + suffix for suffix in SIDECAR_SUFFIXES.values()]


def checksum_name(filename: str) -> str:
    return filename + CHECKSUM_SUFFIX


def metadata_name(filename: str) -> str:
    return filename + METADATA_SUFFIX


def corrupt_mark_name(filename: str) -> str:
    return filename + CORRUPT_SUFFIX
