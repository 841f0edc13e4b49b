"""Which files a verify reads in full, and the record on the server that decides it.

Reading every stored file back each run costs as much as the whole archive.
Instead each run reads a member's files that were never read (new since the
last verify, changed, marked corrupt, or with a sidecar problem) and, of the
rest, the longest-unread first until a `1 / cycle_runs` share of their bytes
is covered. A file whose last full read is `cycle_runs` or more runs of its
member ago is always read, so every file is read back at least once every
`cycle_runs` verify runs of its member, whatever prune and new backups do to
the byte shares. `read_all` (`verify --all`) reads everything, as before.

The record of the last passing full read of each file lives on the backup
server beside the drill record (`.zfs-offsite-verified.json`). Only files that
passed are recorded; files gone from the member's directory drop out. An
unreadable record is a warning (and a line of the run's report) and makes
every file count as never read: reading too much, never skipping. So does an
entry that cannot be true (a run beyond its member's count, a date that is no
date): it would otherwise never be due and sort last in the rotation. Two
verifies writing at once merge file by file, the newer read winning; an
update lost in between can only make a file be read sooner.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime

from zfs_offsite.archive.model import ArchiveFile
from zfs_offsite.errors import PermanentError
from zfs_offsite.remote.store import Store, read_small_file, write_small_file
from zfs_offsite.values.entries import StoreEntry

log = logging.getLogger(__name__)

VERIFY_RECORD = ".zfs-offsite-verified.json"
RECORD_FORMAT = 1
RECORD_LIMIT = 256 * 1024 * 1024  # bytes read of the record; ~150 bytes per file

# Why a file is read in full this run (the report's `read` column).
NEVER_READ = "never read"
RECORD_UNREADABLE = "the verify record was unreadable"
CHANGED = "changed since its last read"
MARKED = "marked corrupt or bad sidecar"
OVERDUE = "due: last read {runs} runs ago"
ROTATION = "rotation"
ALL = "--all"


@dataclass(frozen=True)
class FileRecord:
    """The last full read of one file that passed, and what the file was then."""

    verified: str  # ISO 8601 UTC, seconds
    run: int  # the member's verify run number of that read
    size: int
    mtime: int
    sha256: str  # of the stored bytes, as read
    sealed: bool = False  # encrypted and read without an identity: size and sha256 only

    def matches(self, file: ArchiveFile) -> bool:
        """True if `file` is still the file this record was made of."""
        recorded = file.sidecar.sha256 if file.sidecar is not None else self.sha256
        return (self.size, self.mtime, self.sha256) == (file.size, int(file.mtime), recorded)

    def plausible(self, runs: int) -> bool:
        """True if this entry can be true of a member with `runs` verify runs so far.

        An entry from a later run than the member had, or with a date that
        is no date, would never be due; the file counts as never read.
        """
        if not 1 <= self.run <= runs or self.size < 0 or not _SHA256.fullmatch(self.sha256):
            return False
        try:
            return datetime.fromisoformat(self.verified).tzinfo is not None
        except ValueError:
            return False


_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass
class MemberRecord:
    """A member's verify runs so far and the last passing read of each file."""

    runs: int = 0
    files: dict[str, FileRecord] = field(default_factory=dict)


@dataclass(frozen=True)
class Selection:
    """One run's choice for a member: files to read (and why), files deferred."""

    run: int
    read: dict[str, str]  # filename -> why it is read in full now
    deferred: dict[str, FileRecord]  # filename -> its last passing read


def choose_files(
    files: Sequence[ArchiveFile],
    record: MemberRecord | None,
    cycle_runs: int,
    *,
    read_all: bool = False,
    record_lost: bool = False,
) -> Selection:
    """Pick this run's files: the unread, the overdue, then oldest-read up to the share.

    The share is `ceil(bytes of the already-read files / cycle_runs)`; the
    file that crosses it is still read, so each run reads at least one file
    when there is one to read. `record_lost`: the record on the server was
    unreadable, which the unread files' reason says.
    """
    record = record or MemberRecord()
    run = record.runs + 1
    read: dict[str, str] = {}
    known: list[tuple[ArchiveFile, FileRecord]] = []
    for f in files:
        previous = record.files.get(f.filename)
        if read_all:
            read[f.filename] = ALL
        elif f.corrupt is not None or f.sidecar_problem is not None:
            read[f.filename] = MARKED
        elif previous is None or not previous.plausible(record.runs):
            read[f.filename] = RECORD_UNREADABLE if record_lost else NEVER_READ
        elif not previous.matches(f):
            read[f.filename] = CHANGED
        else:
            known.append((f, previous))
    share = math.ceil(sum(f.size for f, _ in known) / max(1, cycle_runs))
    taken = 0
    deferred: dict[str, FileRecord] = {}
    oldest_read_first = sorted(
        known, key=lambda k: (k[1].run, k[1].verified, k[0].archived_at, k[0].filename)
    )
    for f, previous in oldest_read_first:
        if run - previous.run >= cycle_runs:
            read[f.filename] = OVERDUE.format(runs=run - previous.run)
        elif taken < share:
            read[f.filename] = ROTATION
        else:
            deferred[f.filename] = previous
            continue
        taken += f.size
    return Selection(run, read, deferred)


def updated_record(
    selection: Selection, passed: Mapping[str, FileRecord], present: Iterable[str]
) -> MemberRecord:
    """The member's record after this run: deferred files as they were, passed reads anew.

    A file read this run that did not pass is left out, so it is read again
    next run; so is every file no longer in `present` (pruned, renamed).
    """
    names = set(present)
    files = {n: r for n, r in selection.deferred.items() if n in names}
    files |= {n: r for n, r in passed.items() if n in names and n in selection.read}
    return MemberRecord(selection.run, dict(sorted(files.items())))


def merge_member(ours: MemberRecord, theirs: MemberRecord | None) -> MemberRecord:
    """Our new record of a member over one another verify wrote meanwhile: newer reads win.

    Only files we saw stay (ours knows the listing and the failures); a
    concurrent run's newer read of the same, unchanged file is kept.
    """
    if theirs is None:
        return ours
    files = {}
    for name, mine in ours.files.items():
        other = theirs.files.get(name)
        same = other is not None and (other.size, other.mtime, other.sha256) == (
            mine.size,
            mine.mtime,
            mine.sha256,
        )
        newer = (
            other is not None
            and same
            and other.plausible(theirs.runs)
            and other.verified > mine.verified
        )
        files[name] = other if newer and other is not None else mine
    return MemberRecord(max(ours.runs, theirs.runs), files)


def parse_record(data: bytes) -> dict[str, MemberRecord]:
    """The record's members; ValueError (or TypeError) for anything else."""
    raw = json.loads(data)
    if not isinstance(raw, dict) or raw.get("format") != RECORD_FORMAT:
        raise ValueError(f"not a format {RECORD_FORMAT} verify record")
    members = raw["members"]
    if not isinstance(members, dict):
        raise ValueError("its members are not an object")
    result = {}
    for name, section in members.items():
        runs = section["runs"]
        if not isinstance(runs, int) or isinstance(runs, bool) or runs < 0:
            raise ValueError(f"member {name}: runs is not a count")
        files = {f: _file_record(entry) for f, entry in section["files"].items()}
        result[name] = MemberRecord(runs, files)
    return result


_FIELD_TYPES = {"verified": str, "run": int, "size": int, "mtime": int, "sha256": str}


def _file_record(entry: dict[str, object]) -> FileRecord:
    """One file's entry, its fields of the right types (TypeError otherwise)."""
    for name, kind in _FIELD_TYPES.items():
        value = entry[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise TypeError(f"{name} of a file is not a {kind.__name__}")
    return FileRecord(**entry)  # type: ignore[arg-type]


def render_record(members: Mapping[str, MemberRecord]) -> bytes:
    data = {
        "format": RECORD_FORMAT,
        "members": {
            name: {
                "runs": m.runs,
                "files": {f: asdict(r) for f, r in sorted(m.files.items())},
            }
            for name, m in sorted(members.items())
        },
    }
    return (json.dumps(data, indent=1) + "\n").encode()


@dataclass(frozen=True)
class RecordRead:
    """The record as read from the server, and why it could not be, if it could not."""

    members: dict[str, MemberRecord]
    problem: str = ""  # one line; "" when the record was read (or there is none yet)


# Anything a damaged or hostile record makes the parser raise (RecursionError: deep nesting).
_UNREADABLE = (
    OSError,
    PermanentError,
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    RecursionError,
)


def load_verify_record(store: Store) -> RecordRead:
    """Every member's record; none, with a one-line warning and its reason, when unreadable."""
    try:
        entry = store.stat(VERIFY_RECORD)
        if entry is None:
            return RecordRead({})
        if (misplaced := _not_a_file(entry)) is not None:
            raise ValueError(f"it {misplaced}")
        return RecordRead(parse_record(read_small_file(store, VERIFY_RECORD, RECORD_LIMIT)))
    except _UNREADABLE as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.warning(
            "%s on the backup server is unreadable (%s): every file counts as never read "
            "and is read in full; the record is written afresh",
            VERIFY_RECORD,
            why,
        )
        return RecordRead({}, why)


def read_verify_record(store: Store) -> dict[str, MemberRecord]:
    """Every member's record; empty, with a one-line warning, when it cannot be read."""
    return load_verify_record(store).members


def record_note(problem: str) -> str:
    """The report's line for an unreadable record (`RecordRead.problem`)."""
    return (
        f"the verify record {VERIFY_RECORD} was unreadable ({problem}): every file was read in full"
    )


def _not_a_file(entry: StoreEntry) -> str | None:
    """Why the record's place holds no record file (never followed, never replaced)."""
    if not (entry.is_dir or entry.is_symlink):
        return None
    kind = "a symlink" if entry.is_symlink else "a directory"
    return f"is {kind} at the target's root: move it aside so verify can record what it read"


def write_verify_record(
    store: Store, updates: Mapping[str, MemberRecord], keep: Iterable[str] | None = None
) -> None:
    """Merge members' new records into the record on the server and replace it atomically.

    `keep`, when given, is every member directory there is: other members
    drop out (their directory is gone). A directory or symlink in the record's
    place is an error naming the fix; nothing is written beside it.
    """
    entry = store.stat(VERIFY_RECORD)
    if entry is not None and (misplaced := _not_a_file(entry)) is not None:
        raise PermanentError(f"{VERIFY_RECORD} {misplaced}")
    members = read_verify_record(store)
    for name, ours in updates.items():
        members[name] = merge_member(ours, members.get(name))
    if keep is not None:
        wanted = set(keep)
        members = {n: m for n, m in members.items() if n in wanted}
    write_small_file(store, VERIFY_RECORD, render_record(members))
