"""Per-member archive status: newest local and archived snapshot, age, chain, bytes."""

from __future__ import annotations

import time
from dataclasses import dataclass

from zfs_offsite.archive import MemberArchive
from zfs_offsite.members import Member
from zfs_offsite.planner import archived_chain, archived_snapshots, restore_chains


@dataclass(frozen=True)
class MemberStatus:
    member: str
    newest_local: str | None
    newest_archived: str | None
    archived_age_hours: float | None
    chain_length: int
    archive_bytes: int
    partial_files: int
    ignored_files: int


def member_status(member: Member, archive: MemberArchive, now: float | None = None) -> MemberStatus:
    """Summarise one member; age is from the archived snapshot's creation time."""
    now = time.time() if now is None else now
    chains = restore_chains(archive.files)
    archived = archived_snapshots(member.snapshots, archive.files, chains)
    newest = archived[-1] if archived else None
    chain = (archived_chain(newest, archive.files, chains) or []) if newest else []
    return MemberStatus(
        member=member.name,
        newest_local=member.newest.name if member.newest else None,
        newest_archived=newest.name if newest else None,
        archived_age_hours=(now - newest.creation) / 3600 if newest else None,
        chain_length=len(chain),
        archive_bytes=sum(f.size for f in archive.files),
        partial_files=len(archive.partials),
        ignored_files=len(archive.ignored),
    )
