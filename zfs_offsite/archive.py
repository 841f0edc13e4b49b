"""The remote index: what a member's directory on the backup server holds.

The directory is the source of truth for what is backed up. Each backup file
may have two sidecars: `<file>.sha256` (for `sha256sum -c`) and `<file>.json`
(GUIDs and figures a restore and the planner need). Seed-era files have none.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime

from zfs_offsite.naming import (
    SIDECAR_SUFFIXES,
    BackupName,
    Kind,
    classify,
    corrupt_mark_name,
    metadata_name,
)
from zfs_offsite.store import Store, StoreEntry, read_small_file

log = logging.getLogger(__name__)

SIDECAR_FORMAT = 1


@dataclass(frozen=True)
class Sidecar:
    """Metadata written next to each completed backup file."""

    dataset: str
    target: str
    target_guid: int
    compression: str
    sha256: str
    raw_bytes: int
    stored_bytes: int
    started: str
    finished: str
    tool_version: str
    base: str | None = None
    base_guid: int | None = None
    source_host: str = ""
    target_creation: int | None = None  # when the snapshot was taken (epoch seconds)
    format: int = SIDECAR_FORMAT

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> Sidecar:
        raw = json.loads(data)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in raw.items() if k in known})


@dataclass(frozen=True)
class ArchiveFile:
    """A backup file under its final name, with its sidecar if it has one."""

    filename: str
    name: BackupName
    size: int
    mtime: float
    sidecar: Sidecar | None = None
    corrupt: str | None = None  # why verify found it unsound, if it did

    @property
    def target_guid(self) -> int | None:
        return self.sidecar.target_guid if self.sidecar else None

    @property
    def base_guid(self) -> int | None:
        return self.sidecar.base_guid if self.sidecar else None

    @property
    def archived_at(self) -> float:
        """When it was stored: the sidecar's finish time, else the file's mtime (seed era)."""
        if self.sidecar is not None:
            with contextlib.suppress(ValueError):
                return datetime.fromisoformat(self.sidecar.finished).timestamp()
        return self.mtime

    @property
    def sound(self) -> bool:
        """False once verify has marked it corrupt: never a base, never in a restore chain."""
        return self.corrupt is None

    @property
    def verified(self) -> bool:
        """True if a checksum is recorded (seed-era files have none)."""
        return self.sidecar is not None


@dataclass
class MemberArchive:
    """A member's directory, sorted into backups, partial uploads and foreign files."""

    member: str
    files: list[ArchiveFile] = field(default_factory=list)
    partials: list[StoreEntry] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def names(self) -> set[str]:
        return {f.filename for f in self.files}


def read_member_archive(store: Store, member: str, dataset_part: str | None) -> MemberArchive:
    """List a member's directory and read the sidecars; unknown files are kept and reported.

    `dataset_part` None (a restore where the source dataset is gone) takes the
    dataset part that most backup files in the directory name.
    """
    entries = store.listdir(member)
    if dataset_part is None:
        dataset_part = _common_dataset_part(entries)
    archive = MemberArchive(member)
    present = {e.name for e in entries}
    for entry in entries:
        kind, name = classify(entry.name)
        if kind is Kind.PARTIAL:
            archive.partials.append(entry)
            continue
        if kind in SIDECAR_SUFFIXES or kind is Kind.TOOL:
            continue
        if kind is Kind.UNKNOWN or name is None or entry.is_dir or name.dataset != dataset_part:
            log.warning("ignoring %s/%s: not a backup file of %s", member, entry.name, dataset_part)
            archive.ignored.append(entry.name)
            continue
        sidecar = None
        if metadata_name(entry.name) in present:
            sidecar = _read_sidecar(store, f"{member}/{metadata_name(entry.name)}")
        corrupt = None
        if corrupt_mark_name(entry.name) in present:
            mark = read_small_file(store, f"{member}/{corrupt_mark_name(entry.name)}")
            corrupt = mark.decode(errors="replace").strip() or "marked corrupt"
        archive.files.append(
            ArchiveFile(entry.name, name, entry.size, entry.mtime, sidecar, corrupt)
        )
    return archive


def _common_dataset_part(entries: list[StoreEntry]) -> str | None:
    names = [n for e in entries if (n := classify(e.name))[0] is Kind.BACKUP]
    parts = Counter(name.dataset for _, name in names if name is not None)
    return parts.most_common(1)[0][0] if parts else None


def _read_sidecar(store: Store, path: str) -> Sidecar | None:
    try:
        return Sidecar.from_json(read_small_file(store, path))
    except (ValueError, TypeError, KeyError) as exc:
        log.warning("sidecar %s is unreadable (%s): treating its file as unverified", path, exc)
        return None


def checksum_line(sha256: str, filename: str) -> bytes:
    """A line `sha256sum -c` accepts (binary mode marker)."""
    return f"{sha256} *{filename}\n".encode()
