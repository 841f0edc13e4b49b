"""The remote index: what a member's directory on the backup server holds.

The directory is the source of truth for what is backed up. Each backup file
may have two sidecars: `<file>.sha256` (for `sha256sum -c`) and `<file>.json`
(GUIDs and figures a restore and the planner need). Seed-era files have none.
A file this tool wrote (`.zst`, or one with a `.sha256`) whose `.json` is
missing or unreadable is not taken for a seed-era file: it is reported and
never used as a base or restore link, since its identity cannot be established.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections import Counter
from dataclasses import MISSING, asdict, dataclass, field
from datetime import datetime

from zfs_offsite.errors import ConfigError, PermanentError
from zfs_offsite.naming import (
    SIDECAR_SUFFIXES,
    BackupName,
    Compression,
    Kind,
    checksum_name,
    classify,
    corrupt_mark_name,
    metadata_name,
)
from zfs_offsite.store import Store, StoreEntry, read_small_file

log = logging.getLogger(__name__)

SIDECAR_FORMAT = 1
_SHA256 = re.compile(r"[0-9a-f]{64}")


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
        """Parse a sidecar; ValueError with one line saying what is wrong, for any input."""
        try:
            raw = json.loads(data)
        except ValueError as exc:  # bad JSON or bad UTF-8
            raise ValueError(f"not JSON ({str(exc).splitlines()[0]})") from None
        except RecursionError:  # `[[[[...` nested deeper than Python's stack
            raise ValueError("not JSON (nested too deeply)") from None
        if not isinstance(raw, dict):
            raise ValueError(f"a JSON {_json_kind(raw)}, not an object")
        values = {}
        for name, (kinds, wanted, required) in _FIELDS.items():
            if name not in raw:
                if required:
                    raise ValueError(f"no {name!r} field")
                continue
            value = raw[name]
            if isinstance(value, bool) or not isinstance(value, kinds):
                shown = json.dumps(value)
                shown = shown if len(shown) <= 40 else shown[:37] + "..."
                raise ValueError(f"field {name!r} is {shown}, not {wanted}")
            values[name] = value
        if not _SHA256.fullmatch(values["sha256"]):
            raise ValueError("field 'sha256' is not 64 hex digits")
        return cls(**values)


# Each field's JSON types (by its annotation) and whether a sidecar must have it.
_JSON_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "int": ((int,), "an integer"),
    "str": ((str,), "a string"),
    "int | None": ((int, type(None)), "an integer or null"),
    "str | None": ((str, type(None)), "a string or null"),
}
_FIELDS = {
    name: (*_JSON_TYPES[str(spec.type)], spec.default is MISSING)
    for name, spec in Sidecar.__dataclass_fields__.items()
}


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array"}.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class ArchiveFile:
    """A backup file under its final name, with its sidecar if it has one."""

    filename: str
    name: BackupName
    size: int
    mtime: float
    sidecar: Sidecar | None = None
    corrupt: str | None = None  # why verify found it unsound, if it did
    # One line naming a `.json`/`.sha256` that is missing, unreadable or not a file, and
    # the fix. With `sidecar` None it means this tool wrote the file but its identity is lost.
    sidecar_problem: str | None = None

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
    def identified(self) -> bool:
        """False for a file this tool wrote whose `.json` is gone or unreadable.

        Its GUIDs are unknown, and unlike a seed-era file it cannot be trusted by
        name (a sidecar was written, so the name alone was never its identity).
        """
        return self.sidecar is not None or self.sidecar_problem is None

    @property
    def sound(self) -> bool:
        """False if marked corrupt or unidentified: never a base, never in a restore chain."""
        return self.corrupt is None and self.identified

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
    ignored: list[str] = field(default_factory=list)  # kept, never deleted
    reasons: dict[str, str] = field(default_factory=dict)  # ignored name -> one-line why
    # Directories and symlinks named like this member's backups or sidecars: findings.
    not_files: list[str] = field(default_factory=list)
    entries: dict[str, StoreEntry] = field(default_factory=dict)  # the listing, by name

    def names(self) -> set[str]:
        return {f.filename for f in self.files}

    def ignore(self, name: str, reason: str) -> None:
        log.warning("ignoring %s/%s: %s", self.member, name, reason)
        self.ignored.append(name)
        self.reasons[name] = reason


def check_member_name(member: str) -> None:
    """A member name must be one path component: never a way out of the target's root."""
    if member in {"", ".", ".."} or "/" in member or "\0" in member:
        raise ConfigError(
            f"{member!r} is not a member directory name (one path component, not . or ..)"
        )


def read_member_archive(store: Store, member: str, dataset_part: str | None) -> MemberArchive:
    """List a member's directory and read the sidecars; unknown files are kept and reported.

    `dataset_part` None (a restore where the source dataset is gone) takes the
    dataset part that most backup files in the directory name. Directories and
    symlinks are never read, followed or taken for backups; files of this tool
    whose sidecars are missing or unreadable carry a `sidecar_problem`.
    """
    check_member_name(member)
    entries = store.listdir(member)
    if dataset_part is None:
        dataset_part = _common_dataset_part(entries)
    by_name = {e.name: e for e in entries}
    archive = MemberArchive(member, entries=by_name)
    for entry in entries:
        kind, name = classify(entry.name)
        ours = name is not None and name.dataset == dataset_part
        if not is_file(entry):
            archive.ignore(entry.name, _not_a_file(entry))
            if ours:
                archive.not_files.append(entry.name)
            continue
        if kind is Kind.PARTIAL:
            archive.partials.append(entry)
            continue
        if kind in SIDECAR_SUFFIXES or kind is Kind.TOOL:
            continue
        if kind is Kind.UNKNOWN or name is None or not ours:
            archive.ignore(entry.name, f"not a backup file of {dataset_part}")
            continue
        sidecar, problem = _sidecars(store, member, entry.name, name, by_name)
        corrupt = _corrupt_mark(store, member, by_name.get(corrupt_mark_name(entry.name)))
        archive.files.append(
            ArchiveFile(entry.name, name, entry.size, entry.mtime, sidecar, corrupt, problem)
        )
    return archive


def is_file(entry: StoreEntry) -> bool:
    """A regular file by the listing (lstat): only those are read, renamed or deleted."""
    return not (entry.is_dir or entry.is_symlink)


def _not_a_file(entry: StoreEntry) -> str:
    what = "a symlink (never followed)" if entry.is_symlink else "a directory"
    return f"{entry.name} is {what}, not a file"


def _common_dataset_part(entries: list[StoreEntry]) -> str | None:
    names = [n for e in entries if is_file(e) if (n := classify(e.name))[0] is Kind.BACKUP]
    parts = Counter(name.dataset for _, name in names if name is not None)
    return parts.most_common(1)[0][0] if parts else None


# What a file without a usable `.json` is, and the fix.
_NO_IDENTITY = (
    "its snapshot GUIDs are unknown, so it is no base and no restore link; "
    "put the .json back from a copy, or move the file aside"
)


def _sidecars(
    store: Store, member: str, filename: str, name: BackupName, by_name: dict[str, StoreEntry]
) -> tuple[Sidecar | None, str | None]:
    """The file's sidecar, and a one-line problem if `.json` or `.sha256` is not as written."""
    metadata = by_name.get(metadata_name(filename))
    checksum = by_name.get(checksum_name(filename))
    if metadata is None:
        # The seed wrote only `.gz` files and no sidecars: anything else is ours.
        if name.compression is Compression.GZIP and checksum is None:
            return None, None  # seed era: the name is all there is
        why = "a .zst file" if name.compression is Compression.ZSTD else "it has a .sha256"
        return None, (
            f"{metadata_name(filename)} is missing (this tool wrote the file: {why}): "
            f"{_NO_IDENTITY}"
        )
    if not is_file(metadata):
        return None, f"{_not_a_file(metadata)}: {_NO_IDENTITY}"
    sidecar, why = _read_sidecar(store, f"{member}/{metadata.name}")
    if sidecar is None:
        return None, f"{metadata.name} is unreadable ({why}): {_NO_IDENTITY}"
    if (sidecar.target, sidecar.base) != (name.target, name.base):
        return None, (
            f"{metadata.name} records {sidecar.base or 'full'} -> {sidecar.target}, but the "
            f"file name says {name.base or 'full'} -> {name.target}: {_NO_IDENTITY}"
        )
    recreate = (
        f"recreate it as the line '{checksum_line(sidecar.sha256, filename).decode().strip()}'"
    )
    if checksum is None:
        return sidecar, f"{checksum_name(filename)} is missing: {recreate}"
    if not is_file(checksum):
        return sidecar, f"{_not_a_file(checksum)}: move it aside and {recreate}"
    return sidecar, None


def _read_sidecar(store: Store, path: str) -> tuple[Sidecar | None, str]:
    """The sidecar, or None and why it cannot be read (any content, any read failure)."""
    try:
        return Sidecar.from_json(read_small_file(store, path)), ""
    except (OSError, PermanentError) as exc:  # not StoreError: a dropped link is retried
        return None, _one_line(exc)
    except ValueError as exc:
        return None, str(exc)


def _corrupt_mark(store: Store, member: str, mark: StoreEntry | None) -> str | None:
    """Why verify marked the file corrupt; a mark that cannot be read still marks it."""
    if mark is None:
        return None
    if not is_file(mark):
        return _not_a_file(mark)
    try:
        text = read_small_file(store, f"{member}/{mark.name}").decode(errors="replace")
    except (OSError, PermanentError) as exc:
        return f"marked corrupt; the mark is unreadable ({_one_line(exc)})"
    return text.strip().splitlines()[0] if text.strip() else "marked corrupt"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def checksum_line(sha256: str, filename: str) -> bytes:
    """A line `sha256sum -c` accepts (binary mode marker)."""
    return f"{sha256} *{filename}\n".encode()
