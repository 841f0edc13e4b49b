"""Verify: read every stored file back and check that each member's chains hold.

Each file is read through the store (as a restore would), checked against its
sidecar (size, sha256), decompressed to its end and checked for the send
stream's END record. A file that fails gets a `<file>.corrupt` mark next to it
(never deleted), which keeps the planner from building on it; a mark on a
file that now passes is removed.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from enum import StrEnum

from zfs_offsite.archive import ArchiveFile, MemberArchive, read_member_archive
from zfs_offsite.errors import IntegrityError, StoreError
from zfs_offsite.naming import corrupt_mark_name
from zfs_offsite.planner import missing_link, restore_chains
from zfs_offsite.readback import ReadStats, stream_chunks
from zfs_offsite.store import Store, write_small_file

log = logging.getLogger(__name__)


class Verdict(StrEnum):
    """From best to worst; a member gets the worst verdict of its files."""

    OK = "ok"
    UNVERIFIED = "unverified"
    EMPTY = "no backups"
    BROKEN_CHAIN = "broken chain"
    CORRUPT = "corrupt"


SEVERITY = list(Verdict)


@dataclass(frozen=True)
class FileCheck:
    filename: str
    verdict: Verdict
    detail: str = ""
    stored_bytes: int = 0
    raw_bytes: int = 0


@dataclass
class MemberVerification:
    member: str
    files: list[FileCheck] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        if not self.files:
            return Verdict.EMPTY
        return max((f.verdict for f in self.files), key=SEVERITY.index)

    @property
    def detail(self) -> str:
        worst = [f for f in self.files if f.verdict is self.verdict and f.detail]
        return worst[0].detail if worst else ""


def check_file(store: Store, member: str, file: ArchiveFile) -> FileCheck:
    """Read one file back; OK (sidecar matched), UNVERIFIED (seed era, sound) or CORRUPT."""
    stats = ReadStats()
    try:
        for _ in stream_chunks(store, member, file, stats):
            pass
    except IntegrityError as exc:
        return FileCheck(file.filename, Verdict.CORRUPT, str(exc), stats.stored_bytes)
    except FileNotFoundError:
        return FileCheck(file.filename, Verdict.CORRUPT, f"{member}/{file.filename} vanished")
    verdict = Verdict.OK if file.verified else Verdict.UNVERIFIED
    detail = "" if file.verified else "seed-era file: no sidecar checksum, decompresses to its end"
    return FileCheck(file.filename, verdict, detail, stats.stored_bytes, stats.raw_bytes)


def verify_member(store: Store, member: str, *, mark: bool = True) -> MemberVerification:
    """Check every file of a member, then the chains over the files that passed."""
    archive = read_member_archive(store, member, None)
    checks = {f.filename: check_file(store, member, f) for f in archive.files}
    if mark:
        _update_marks(store, archive, checks)
    judged = [
        dataclasses.replace(
            f, corrupt=c.detail if (c := checks[f.filename]).verdict is Verdict.CORRUPT else None
        )
        for f in archive.files
    ]
    chains = restore_chains(judged)
    result = MemberVerification(member)
    for f in judged:
        check = checks[f.filename]
        if check.verdict is not Verdict.CORRUPT and f.filename not in chains:
            check = dataclasses.replace(
                check, verdict=Verdict.BROKEN_CHAIN, detail=missing_link(f, judged)
            )
        result.files.append(check)
    return result


def _update_marks(store: Store, archive: MemberArchive, checks: dict[str, FileCheck]) -> None:
    for f in archive.files:
        check = checks[f.filename]
        path = f"{archive.member}/{corrupt_mark_name(f.filename)}"
        try:
            if check.verdict is Verdict.CORRUPT:
                write_small_file(store, path, (check.detail + "\n").encode())
            elif f.corrupt is not None:
                store.remove(path)
                log.info("%s passes its checks again: mark removed", path)
        except StoreError as exc:
            log.warning("cannot update %s: %s", path, exc)


def archived_members(store: Store) -> list[str]:
    """Member directories on the backup server."""
    return [e.name for e in store.listdir("") if e.is_dir and not e.name.startswith(".")]
