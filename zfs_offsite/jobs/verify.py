"""Verify: read stored files back (this run's share, or all) and check each member's chains.

Each file is read through the store (as a restore would), checked against its
sidecar (size, sha256), decompressed to its end and checked for the send
stream's END record. An encrypted file (`.age`) is decrypted on the way
when an identity is configured; without one, its size and sha256 (which cover
the stored, encrypted bytes) are still checked, and the report says the END
record was not. A file that fails gets a `<file>.corrupt` mark next to it
(never deleted), which keeps the backup planner (plan/backup.py) from building on it; a mark on a
file that now passes is removed. Missing, unreadable or mismatched sidecars,
and directories or symlinks named like backups, are findings too: nothing in
a member's directory is skipped silently.

Which files are read in full is the rotation's choice (verify_rotation.py):
new and changed files always, older ones a share per run; a file not read
this run keeps the verdict of its last passing read, and the report says when
that was. A read that fails is a read too (its `last_read` is now), yet only
passing reads enter the record, so a failing file is read again next run.
The record is written here too (`RecordWriter`), as members finish, whoever
runs the members (the flow's tasks, a script): one home for what is stored.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from zfs_offsite.archive.index import is_file
from zfs_offsite.archive.model import ArchiveFile, MemberArchive, checksum_line
from zfs_offsite.archive.names import checksum_name, corrupt_mark_name
from zfs_offsite.archive.verify_rotation import (
    VERIFY_RECORD,
    FileRecord,
    MemberRecord,
    Selection,
    choose_files,
    record_note,
    updated_record,
    write_verify_record,
)
from zfs_offsite.connect import open_store
from zfs_offsite.errors import IntegrityError, PermanentError, StoreError, ZfsOffsiteError
from zfs_offsite.jobs.archive_read import read_archive
from zfs_offsite.keys.identities import Identity, IdentityError, configured_identities
from zfs_offsite.plan.chains import missing_link, restore_chains
from zfs_offsite.remote.store import Store, read_small_file, write_small_file
from zfs_offsite.settings import Settings
from zfs_offsite.stream.readback import ReadStats, checked_chunks, read_ahead, stream_chunks

log = logging.getLogger(__name__)


class Verdict(StrEnum):
    """From best to worst; a member gets the worst verdict of its files."""

    OK = "ok"
    UNVERIFIED = "unverified"
    EMPTY = "no backups"
    BAD_SIDECAR = "bad sidecar"  # .json/.sha256 missing, unreadable or wrong
    NOT_A_FILE = "not a file"  # a directory or symlink named like a backup or sidecar
    # The login may not read it (a file or directory mode, an ACL): nothing is known of its
    # bytes, so it is neither marked corrupt nor counted as sound.
    UNREADABLE = "unreadable"
    BROKEN_CHAIN = "broken chain"
    CORRUPT = "corrupt"


SEVERITY = list(Verdict)
FAILING = frozenset(
    {
        Verdict.EMPTY,
        Verdict.BAD_SIDECAR,
        Verdict.NOT_A_FILE,
        Verdict.UNREADABLE,
        Verdict.BROKEN_CHAIN,
        Verdict.CORRUPT,
    }
)
_CHECKSUM_LINE = re.compile(r"([0-9a-f]{64}) [ *](.+)")
SEALED = (
    "size and sha256 of the stored bytes checked; the send stream's END record was not "
    "(the file is encrypted and setting encryption.identity_file is unset)"
)


@dataclass(frozen=True)
class FileCheck:
    filename: str
    verdict: Verdict
    detail: str = ""
    stored_bytes: int = 0
    raw_bytes: int = 0
    sha256: str = ""  # of the stored bytes, when read
    read: str = ""  # why it was read in full this run, or DEFERRED
    last_read: str = ""  # when it was last read in full (ISO 8601 UTC): now, if read this run
    snapshot_guid: int | None = None  # the last snapshot its stream's END names, if read


DEFERRED = "deferred"
PASSED = frozenset({Verdict.OK, Verdict.UNVERIFIED})


@dataclass
class MemberVerification:
    member: str
    files: list[FileCheck] = field(default_factory=list)
    record: MemberRecord | None = None  # the member's verify record after this run
    note: str = ""  # a run-wide fact the report must show (an unreadable verify record)
    # Why the member could not be verified at all (its directory unreadable, the server
    # gone): reported with the member, never left out of the report.
    error: str = ""

    @property
    def verdict(self) -> Verdict:
        if self.error:
            return Verdict.UNREADABLE
        if not self.files:
            return Verdict.EMPTY
        return max((f.verdict for f in self.files), key=SEVERITY.index)

    @property
    def detail(self) -> str:
        """A failing member: its worst file's detail; else how many files were read and deferred
        (and a sound file's caveat, e.g. seed era), never one deferred file's note."""
        if self.error:
            return self.error
        worst = [f for f in self.files if f.verdict is self.verdict and f.detail]
        if self.verdict in FAILING:
            return worst[0].detail if worst else ""
        read = sum(1 for f in self.files if f.read not in ("", DEFERRED))
        deferred = sum(1 for f in self.files if f.read == DEFERRED)
        counts = f"{read} file(s) read in full this run"
        if deferred:
            counts += f", {deferred} deferred to a later run (rotation)"
        caveat = next((f.detail for f in worst if f.read != DEFERRED), "")
        return f"{counts}; {caveat}" if caveat else counts


def check_file(
    store: Store,
    member: str,
    file: ArchiveFile,
    checksum: str | None = None,
    identities: Sequence[Identity] | None = None,
) -> FileCheck:
    """Read one file back: OK, UNVERIFIED (seed era, sound), BAD_SIDECAR or CORRUPT.

    `checksum` is the text of the file's `.sha256` where it has one as a file;
    it must be the line `sha256sum -c` needs for what was read. An encrypted
    file is decrypted with `identities`; without them only its stored bytes
    are checked.
    """
    if file.name.encrypted and identities is not None:
        try:
            return _check_file(store, member, file, checksum, identities)
        except IdentityError as exc:
            # The stored bytes can still be proven; the key problem is a restore's, said loudly.
            log.warning("%s", exc)
            check = _check_file(store, member, file, checksum, None)
            if check.detail != SEALED:
                return check
            detail = f"{SEALED.split(' (', 1)[0]}: {exc}"
            return dataclasses.replace(check, detail=detail)
    return _check_file(store, member, file, checksum, identities)


def _check_file(
    store: Store,
    member: str,
    file: ArchiveFile,
    checksum: str | None,
    identities: Sequence[Identity] | None,
) -> FileCheck:
    stats = ReadStats()
    sealed = file.name.encrypted and identities is None
    chunks: Iterator[bytes | bytearray] = (
        read_ahead(checked_chunks(store, member, file, stats))
        if sealed
        else stream_chunks(store, member, file, stats, identities)
    )
    try:
        for _ in chunks:
            pass
    except IntegrityError as exc:
        return FileCheck(file.filename, Verdict.CORRUPT, str(exc), stats.stored_bytes)
    except FileNotFoundError:
        return FileCheck(file.filename, Verdict.CORRUPT, f"{member}/{file.filename} vanished")
    except PermanentError as exc:  # after IntegrityError, its subclass: the server refused a read
        return FileCheck(file.filename, Verdict.UNREADABLE, unreadable_detail(exc))
    figures = (stats.stored_bytes, stats.raw_bytes, stats.sha256)
    recorded = _checksum_of(checksum, file.filename) if checksum is not None else None
    if file.sidecar is None and recorded is not None and recorded != stats.sha256:
        # Without its .json, the .sha256 is the file's only checksum.
        detail = (
            f"{member}/{file.filename}: sha256 {stats.sha256} does not match its "
            f"{checksum_name(file.filename)} ({recorded})"
        )
        return FileCheck(file.filename, Verdict.CORRUPT, detail, *figures)
    if file.sidecar_problem is not None:
        return FileCheck(file.filename, Verdict.BAD_SIDECAR, file.sidecar_problem, *figures)
    if file.sidecar is not None and checksum is not None and recorded != stats.sha256:
        line = checksum_line(stats.sha256, file.filename).decode().strip()
        detail = (
            f"{checksum_name(file.filename)} does not hold the checksum of the file and its "
            f".json (sha256sum -c fails): recreate it as the line '{line}'"
        )
        return FileCheck(file.filename, Verdict.BAD_SIDECAR, detail, *figures)
    if file.has_sidecar:
        return FileCheck(file.filename, Verdict.OK, SEALED if sealed else "", *figures)
    detail = "seed-era file: no sidecar checksum, decompresses to its end"
    return FileCheck(
        file.filename, Verdict.UNVERIFIED, detail, *figures, snapshot_guid=stats.snapshot_guid
    )


def unreadable_detail(exc: Exception) -> str:
    """The server's reason (naming the path) and the fix: one line a storage admin can act on."""
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return (
        f"the backup login cannot read it ({reason}): "
        "make it readable by that login (file and directory modes, ACLs), then verify again; "
        "its bytes are unchecked, so it is not marked corrupt"
    )


def _checksum_of(text: str, filename: str) -> str | None:
    """The sha256 a `.sha256` file records for `filename`, None if it records none."""
    match = _CHECKSUM_LINE.fullmatch(text.strip())
    return match[1] if match and match[2] == filename else None


def _read_checksum(store: Store, archive: MemberArchive, file: ArchiveFile) -> str | None:
    """The text of the file's `.sha256` if it is a regular file; "" if it cannot be read."""
    entry = archive.entries.get(checksum_name(file.filename))
    if entry is None or not is_file(entry):
        return None
    try:
        return read_small_file(store, f"{archive.member}/{entry.name}").decode(errors="replace")
    except (OSError, PermanentError) as exc:
        log.warning("cannot read %s/%s: %s", archive.member, entry.name, exc)
        return ""


def verify_member(
    settings: Settings,
    store: Store,
    member: str,
    *,
    mark: bool = True,
    record: MemberRecord | None = None,
    read_all: bool = False,
    record_problem: str = "",
) -> MemberVerification:
    """Check this run's share of a member's files, then the chains over those that passed.

    `record` is the member's verify record (None: nothing was ever read, so
    every file is read); the share is `settings.verify.cycle_runs`'s, the
    identities `encryption.identity_file`'s. `record_problem` is why the record
    on the server was unreadable (`RecordRead.problem`), which the result's
    `note` and its files' reasons then say. The result carries the record to
    store for the next run: hand it to a `RecordWriter`.
    """
    identities = configured_identities(settings.encryption)
    archive = read_archive(store, member, None)
    selection = choose_files(
        archive.files,
        record,
        settings.verify.cycle_runs,
        read_all=read_all,
        record_lost=bool(record_problem),
    )
    now = datetime.now(UTC).isoformat(timespec="seconds")
    checks: dict[str, FileCheck] = {}
    for f in archive.files:
        if f.filename in selection.deferred:
            checks[f.filename] = _deferred_check(f, selection.deferred[f.filename])
            continue
        check = check_file(store, member, f, _read_checksum(store, archive, f), identities)
        before = record.files.get(f.filename) if record is not None else None
        if before is not None and not before.plausible(record.runs if record else 0):
            before = None
        if check.verdict not in PASSED and before is not None:
            detail = f"{check.detail}; it last passed a full read {before.verified}"
            check = dataclasses.replace(check, detail=detail)
        why = selection.read[f.filename]
        checks[f.filename] = dataclasses.replace(check, read=why, last_read=now)
    if mark:
        _update_marks(store, archive, checks)
    judged = [
        dataclasses.replace(
            f, corrupt=c.detail if (c := checks[f.filename]).verdict is Verdict.CORRUPT else None
        )
        for f in archive.files
    ]
    chains = restore_chains(judged)
    note = record_note(record_problem) if record_problem else ""
    result = MemberVerification(
        member, record=_new_record(selection, archive.files, checks), note=note
    )
    for f in judged:
        check = checks[f.filename]
        unchained = f.filename not in chains and f.identified  # unidentified: reported as such
        if check.verdict is not Verdict.CORRUPT and unchained:
            check = dataclasses.replace(
                check, verdict=Verdict.BROKEN_CHAIN, detail=missing_link(f, judged)
            )
        result.files.append(check)
    for name in archive.not_files:
        detail = f"{archive.reasons[name]}: never read or deleted by this tool; move it aside"
        result.files.append(FileCheck(name, Verdict.NOT_A_FILE, detail))
    return result


def _deferred_check(file: ArchiveFile, last: FileRecord) -> FileCheck:
    """A file not read this run: the verdict of its last passing read, and when that was."""
    how = " (sealed: size and sha256 only)" if last.sealed else ""
    detail = f"not read this run (rotation); last read in full {last.verified}{how}"
    verdict = Verdict.OK if file.has_sidecar else Verdict.UNVERIFIED
    raw = file.sidecar.raw_bytes if file.sidecar is not None else 0
    return FileCheck(
        file.filename, verdict, detail, file.size, raw, last.sha256, DEFERRED, last.verified
    )


def _new_record(
    selection: Selection, files: Sequence[ArchiveFile], checks: Mapping[str, FileCheck]
) -> MemberRecord:
    """The record after this run: every file read now that passed its checks, stamped now."""
    passed = {
        f.filename: FileRecord(
            verified=c.last_read,
            run=selection.run,
            size=f.size,
            mtime=int(f.mtime),
            sha256=c.sha256,
            sealed=c.detail == SEALED,
        )
        for f in files
        if (c := checks[f.filename]).read != DEFERRED and c.verdict in PASSED
    }
    return updated_record(selection, passed, [f.filename for f in files])


def mark_corrupt(store: Store, archive: MemberArchive, filename: str, detail: str) -> bool:
    """Write `<file>.corrupt` holding why, which keeps the planner from building on the file
    (the file itself is never touched); False where a directory or symlink stands in the
    mark's place: reported, never replaced."""
    mark = corrupt_mark_name(filename)
    if mark in archive.not_files:
        return False
    write_small_file(store, f"{archive.member}/{mark}", (detail + "\n").encode())
    return True


def _update_marks(store: Store, archive: MemberArchive, checks: dict[str, FileCheck]) -> None:
    for f in archive.files:
        check = checks[f.filename]
        if check.verdict is Verdict.UNREADABLE:
            continue  # its bytes are unknown: a mark is neither earned nor disproven
        path = f"{archive.member}/{corrupt_mark_name(f.filename)}"
        if corrupt_mark_name(f.filename) in archive.not_files:
            continue  # a directory or symlink in the mark's place: reported, never replaced
        try:
            if check.verdict is Verdict.CORRUPT:
                mark_corrupt(store, archive, f.filename, check.detail)
            elif f.corrupt is not None:
                store.remove(path)
                log.info("%s passes its checks again: mark removed", path)
        except StoreError as exc:
            log.warning("cannot update %s: %s", path, exc)


RECORD_EVERY_SECONDS = 300.0  # a long verify saves its progress this often


class RecordWriter:
    """Stores members' new verify records as their results come in.

    Written every `every` seconds and once at `finish`, so a stopped run keeps
    what it proved without a write per member. `keep` (every member directory,
    on a run over all) drops the records of directories that are gone. A write
    that fails is a warning: the next run then reads those files again, more
    work but never less checking.
    """

    def __init__(
        self,
        settings: Settings,
        keep: Sequence[str] | None = None,
        every: float = RECORD_EVERY_SECONDS,
    ) -> None:
        self._settings = settings
        self._keep = list(keep) if keep is not None else None
        self._every = every
        self._pending: dict[str, MemberRecord] = {}
        self._last_write = time.monotonic()

    def add(self, result: MemberVerification | None) -> None:
        """Take one member's result (None: it was not verified; nothing to record)."""
        if result is not None and result.record is not None:
            self._pending[result.member] = result.record
        if self._pending and time.monotonic() - self._last_write >= self._every:
            self._write(None)

    def finish(self) -> None:
        """Write what is still pending, and drop the records of gone directories."""
        self._write(self._keep)

    def _write(self, keep: list[str] | None) -> None:
        updates, self._pending, self._last_write = self._pending, {}, time.monotonic()
        if not updates and keep is None:
            return
        try:
            with closing(open_store(self._settings.target)) as store:
                write_verify_record(store, updates, keep)
        except (OSError, ZfsOffsiteError) as exc:
            log.warning(
                "could not write %s on the backup server (%s): the next verify reads these "
                "files again",
                VERIFY_RECORD,
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            )
