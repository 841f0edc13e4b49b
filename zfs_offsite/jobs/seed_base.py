"""Before the first incremental on a seed archive: prove the seed-era files it builds on.

Seed files carry no checksum, and the seed wrote them under their final names: a
cut run left a file that looks whole. The tool's own files are proven by their
sidecars when they are stored. So when an incremental's base is still a seed-era
file, the seed-era files of its chain are read once, as verify reads them
(decompressed to the send stream's END record), unless a passing verify read of
the same file is on record (`zfs-offsite verify --all` after `adopt` does that
ahead of the night). A file that fails gets its `.corrupt` mark and the member
fails tonight with one line: the next plan builds on the last sound file, never
on one a restore would stop at. Once a file of the tool's own is the base, this
costs nothing.
"""

from __future__ import annotations

import dataclasses
import logging

from zfs_offsite.archive.model import ArchiveFile, MemberArchive
from zfs_offsite.archive.names import CORRUPT_SUFFIX
from zfs_offsite.archive.verify_rotation import MemberRecord, read_verify_record
from zfs_offsite.errors import PermanentError
from zfs_offsite.jobs.verify import FileCheck, Verdict, check_file, mark_corrupt
from zfs_offsite.plan.backup import BackupPlan
from zfs_offsite.plan.chains import archived_chain, restore_chains
from zfs_offsite.remote.store import Store

log = logging.getLogger(__name__)


class SeedBaseError(PermanentError):
    """A seed-era file the planned incremental builds on does not read back whole."""


def unproven_seed_files(chain: list[ArchiveFile], record: MemberRecord | None) -> list[ArchiveFile]:
    """The chain's seed-era files with no passing verify read of the file as it is now.

    Empty when the chain ends in a file of the tool's own: its base was proven then.
    """
    if not chain or chain[-1].has_sidecar:
        return []
    proven = record.files if record is not None else {}
    return [
        f
        for f in chain
        if not f.has_sidecar and not ((last := proven.get(f.filename)) and last.matches(f))
    ]


def prove_seed_base(store: Store, plan: BackupPlan, archive: MemberArchive) -> None:
    """Read the seed-era files under the plan's base that nothing has proven; raise if one fails."""
    if plan.base is None:
        return
    chain = archived_chain(plan.base, archive.files, restore_chains(archive.files))
    if chain is None:
        raise SeedBaseError(
            f"member {plan.member}: no sound chain of the archive holds the base "
            f"{plan.base.name} any more (a file of it was marked corrupt): run the backup "
            "again to plan from what is left"
        )
    if chain[-1].has_sidecar:
        return  # the base is the tool's own file, proven when it was stored
    unproven = unproven_seed_files(chain, read_verify_record(store).get(plan.member))
    if unproven:
        size = sum(f.size for f in unproven)
        log.info(
            "%s: reading %d seed-era file(s) of the base's chain (%d bytes) once before "
            "building on them: seed files carry no checksum",
            plan.member,
            len(unproven),
            size,
        )
    for file in unproven:
        check = check_file(store, plan.member, file)
        if check.verdict is Verdict.UNVERIFIED:  # a seed file that reads back whole
            check = _named_right(check, file, plan)
        if check.verdict is Verdict.UNVERIFIED:
            continue
        path = f"{plan.member}/{file.filename}"
        if check.verdict is Verdict.CORRUPT:
            then = (
                "marked corrupt, nothing sent; run the backup again to build on the last sound file"
                if mark_corrupt(store, archive, file.filename, check.detail)
                else f"nothing sent; a directory or link stands at {path}{CORRUPT_SUFFIX}: move "
                "it aside and run the backup again"
            )
            raise SeedBaseError(
                f"member {plan.member}: the seed-era file {path} this night would build on "
                f"does not read back whole ({check.detail}): {then}"
            )
        raise SeedBaseError(
            f"member {plan.member}: the seed-era file {path} this night would build on "
            f"could not be proven ({check.verdict.value}: {check.detail}): nothing sent; "
            "fix that, or run `zfs-offsite verify` to see the chain"
        )


def _named_right(check: FileCheck, file: ArchiveFile, plan: BackupPlan) -> FileCheck:
    """CORRUPT if the file named for the base snapshot holds another snapshot's stream.

    Its END names the snapshot it closes; the source knows the base's GUID. A file
    that only carries the base inside an `-I` range (its target destroyed on the
    source) is named for another snapshot and is not judged here.
    """
    base = plan.base
    if base is None or file.name.snapshot != base.name or check.snapshot_guid is None:
        return check
    if check.snapshot_guid == base.guid:
        return check
    detail = (
        f"its stream ends with the snapshot of GUID {check.snapshot_guid}, but "
        f"{base.full_name} is GUID {base.guid}: the file does not hold what its name says"
    )
    return dataclasses.replace(check, verdict=Verdict.CORRUPT, detail=detail)
