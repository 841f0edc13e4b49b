"""The archive's files and sidecars as plain values, read from the remote index."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from dataclasses import MISSING, asdict, dataclass, field
from datetime import datetime
from typing import Any

from zfs_offsite.archive.names import (
    BackupName,
)
from zfs_offsite.errors import ConfigError
from zfs_offsite.values.entries import StoreEntry

log = logging.getLogger(__name__)


SIDECAR_FORMAT = 1
# What `recipients` holds: an age public key, or an SSH key's SHA256 fingerprint.
_FINGERPRINT = re.compile(r"age1[0-9a-z]{58}|SHA256:[A-Za-z0-9+/]{43}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


# Each field's JSON types (by its annotation) and whether a sidecar must have it.
_JSON_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "int": ((int,), "an integer"),
    "str": ((str,), "a string"),
    "int | None": ((int, type(None)), "an integer or null"),
    "str | None": ((str, type(None)), "a string or null"),
    "tuple[str, ...]": ((list,), "an array of strings"),
    "bool": ((bool,), "true or false"),
}


@dataclass(frozen=True)
class Sidecar:
    """Metadata written next to each completed backup file."""

    dataset: str
    snapshot: str  # the snapshot the file holds (JSON key "target", see _JSON_KEYS)
    snapshot_guid: int
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
    snapshot_creation: int | None = None  # when the snapshot was taken (epoch seconds)
    # A raw send (`zfs send -w`) of a natively encrypted dataset: it links only with
    # raw files, and restores to a dataset that needs the key to mount. Absent: false.
    raw: bool = False
    format: int = SIDECAR_FORMAT
    # Fingerprints of the age recipients an encrypted file can be opened by (never a
    # secret); empty for a plain file, and then left out of the JSON.
    recipients: tuple[str, ...] = ()
    # The snapshots between base and target that an `-I` file carries, oldest first,
    # as (name, GUID): `restore --snapshot` of one receives this file, then rolls
    # back. None (absent in the JSON): not recorded (sidecars before this field).
    carries: tuple[tuple[str, int], ...] | None = None

    def to_json(self) -> bytes:
        fields = {_JSON_KEYS.get(name, name): value for name, value in asdict(self).items()}
        if not self.recipients:
            del fields["recipients"]
        if self.carries is None:
            del fields["carries"]
        else:
            fields["carries"] = [{"snapshot": n, "guid": g} for n, g in self.carries]
        return (json.dumps(fields, indent=2, sort_keys=True) + "\n").encode()

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
        values: dict[str, Any] = {}  # each value checked against its field's type below
        for name, (kinds, wanted, required) in _FIELDS.items():
            key = _JSON_KEYS.get(name, name)
            if key not in raw:
                if required:
                    raise ValueError(f"no {key!r} field")
                continue
            value = raw[key]
            # JSON true is a Python int: a boolean only where the field is one.
            if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
                shown = json.dumps(value)
                shown = shown if len(shown) <= 40 else shown[:37] + "..."
                raise ValueError(f"field {key!r} is {shown}, not {wanted}")
            if isinstance(value, list):
                if not all(isinstance(item, str) for item in value):
                    raise ValueError(f"field {key!r} holds a non-string, not {wanted}")
                value = tuple(value)
            values[name] = value
        if "carries" in raw:
            values["carries"] = _parse_carries(raw["carries"])
        if not _SHA256.fullmatch(values["sha256"]):
            raise ValueError("field 'sha256' is not 64 hex digits")
        for index, fingerprint in enumerate(values.get("recipients", ()), 1):
            # Shown in error lines: only the shapes this tool writes, never raw text.
            if not _FINGERPRINT.fullmatch(fingerprint):
                raise ValueError(f"field 'recipients' entry {index} is not a key fingerprint")
        return cls(**values)


# The on-disk format calls the snapshot a file holds its "target"; in the code
# "target" is the backup server, so these fields have other names in Python.
_JSON_KEYS = {
    "snapshot": "target",
    "snapshot_guid": "target_guid",
    "snapshot_creation": "target_creation",
}

_FIELDS = {
    name: (*_JSON_TYPES[str(spec.type)], spec.default is MISSING)
    for name, spec in Sidecar.__dataclass_fields__.items()
    if name != "carries"  # an array of objects: _parse_carries
}


def _parse_carries(value: object) -> tuple[tuple[str, int], ...]:
    """`carries`: an array of {"snapshot": name, "guid": integer}; ValueError otherwise."""
    wanted = 'an array of {"snapshot": string, "guid": integer}'
    if not isinstance(value, list):
        raise ValueError(f"field 'carries' is not {wanted}")
    found = []
    for item in value:
        name = item.get("snapshot") if isinstance(item, dict) else None
        guid = item.get("guid") if isinstance(item, dict) else None
        if not isinstance(name, str) or not isinstance(guid, int) or isinstance(guid, bool):
            raise ValueError(f"field 'carries' is not {wanted}")
        found.append((name, guid))
    return tuple(found)


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    names: dict[type, str] = {str: "string", list: "array"}
    return names.get(type(value), type(value).__name__)


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
    # A file without sidecars where this tool already writes (`plan.chains.trust_by_name`):
    # its name is no identity, so it is no link; `sidecar_problem` says why and what to do.
    untrusted_name: bool = False

    @property
    def snapshot_guid(self) -> int | None:
        return self.sidecar.snapshot_guid if self.sidecar else None

    @property
    def base_guid(self) -> int | None:
        return self.sidecar.base_guid if self.sidecar else None

    @property
    def carries(self) -> tuple[tuple[str, int], ...] | None:
        """The snapshots an `-I` file carries between base and target; None: unrecorded."""
        return self.sidecar.carries if self.sidecar else None

    @property
    def raw(self) -> bool:
        """True for a raw send (`zfs send -w`); seed-era files never are."""
        return self.sidecar.raw if self.sidecar else False

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
    def by_this_tool(self) -> bool:
        """True if this tool wrote it: it has a sidecar, or a sidecar of it is missing or bad."""
        return not self.untrusted_name and (
            self.sidecar is not None or self.sidecar_problem is not None
        )

    @property
    def written_from(self) -> float:
        """When its writing began, at the latest: the upload's start where the sidecar has it.

        Two clocks (the server's mtime, the client's start): the earlier is taken,
        so a wrong clock only makes fewer sidecar-less files pass as seed era.
        """
        started = None
        if self.sidecar is not None:
            with contextlib.suppress(ValueError):
                started = datetime.fromisoformat(self.sidecar.started).timestamp()
        return min(self.mtime, started) if started is not None else self.mtime

    @property
    def has_sidecar(self) -> bool:
        """True if a sidecar records its checksum and GUIDs (seed-era files have none)."""
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


def checksum_line(sha256: str, filename: str) -> bytes:
    """A line `sha256sum -c` accepts (binary mode marker)."""
    return f"{sha256} *{filename}\n".encode()
