"""Per-member archive status: newest local and archived snapshot, age, chain, bytes."""

from __future__ import annotations

import time
from dataclasses import dataclass

from zfs_offsite.archive import MemberArchive, read_member_archive
from zfs_offsite.members import Member
from zfs_offsite.planner import archived_chain, archived_snapshots, restore_chains
from zfs_offsite.store import Store


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
    # Files whose sidecars are missing or unreadable, and directories or symlinks
    # named like backups: `zfs-offsite verify` names each one.
    findings: int = 0
    error: str | None = None  # why the member cannot be backed up at all


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
        findings=sum(f.sidecar_problem is not None for f in archive.files) + len(archive.not_files),
    )


def read_status(store: Store, member: Member, now: float | None = None) -> MemberStatus:
    """One member's status from its directory; a dataset that is no member shows its error."""
    if member.error is not None:
        newest = member.newest.name if member.newest else None
        return MemberStatus(member.name, newest, None, None, 0, 0, 0, 0, error=member.error)
    return member_status(member, read_member_archive(store, member.name, member.dataset_part), now)
