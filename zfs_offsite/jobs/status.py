"""Per-member archive status and its monitoring verdict (ok, warning, critical).

The verdict follows the monitoring-plugin convention (0 ok, 1 warning,
2 critical) so `zfs-offsite status` can be a Nagios/Icinga/Checkmk check:

- critical: no backup file at all; a file verify marked corrupt; the newest
  archived file cannot be restored from a full (broken chain); or the newest
  restorable snapshot is older than `critical_hours`. A night that failed
  shows up as that age: one missed night passes `warning_hours`, two pass
  `critical_hours` (defaults 26 h and 50 h for a nightly schedule).
- warning: older than `warning_hours`; the newest restore chain holds
  seed-era files without a checksum (unverified); files that are in no
  restorable chain but are not the newest (left for a person to look at);
  files whose sidecar is missing or unreadable (verify names them); or a file
  without sidecars written after this tool's first file, which is no link
  (`plan.chains.trust_by_name`: one line each, naming the file and the fix).

A dataset that cannot be a member at all (its `error`) is critical.

A directory at the target's root that no member backs up any more (its
dataset renamed or destroyed on the NAS, or no longer selected) is a
warning of its own (`orphaned_directories`): its restore points are intact
and verify and prune still cover it, but nothing adds to it, and a renamed
dataset's new directory started again with a full.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from zfs_offsite.archive.model import ArchiveFile, MemberArchive
from zfs_offsite.archive.names import SIDECAR_SUFFIXES, partial_of
from zfs_offsite.jobs.archive_read import read_archive
from zfs_offsite.plan.chains import (
    archived_chain,
    archived_snapshots,
    restore_chains,
    restore_points,
    trust_by_name,
)
from zfs_offsite.remote.store import Store
from zfs_offsite.values.entries import StoreEntry
from zfs_offsite.values.partials import is_checkpoint
from zfs_offsite.zfs.members import Member

WARNING_HOURS = 26.0  # a nightly backup plus a margin
CRITICAL_HOURS = 50.0  # two nights missed


class Health(IntEnum):
    """Worst first when compared with max(); the value is the check's exit code."""

    OK = 0
    WARNING = 1
    CRITICAL = 2

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Thresholds:
    warning_hours: float = WARNING_HOURS
    critical_hours: float = CRITICAL_HOURS


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
    backup_files: int = 0
    corrupt_files: list[str] = field(default_factory=list)
    unchained_files: list[str] = field(default_factory=list)
    newest_file_restorable: bool = True
    unverified_in_chain: int = 0
    # Sidecar-less files written after this tool's first file (`plan.chains.trust_by_name`):
    # no link; one line each naming the file and what to do.
    untrusted_files: list[str] = field(default_factory=list)


def _snapshot_time(file: ArchiveFile) -> float:
    """When the file's snapshot was taken (sidecar), else when it was stored (seed era)."""
    if file.sidecar is not None and file.sidecar.snapshot_creation:
        return float(file.sidecar.snapshot_creation)
    return file.archived_at


def partial_uploads(partials: list[StoreEntry]) -> int:
    """Partial files counted as the uploads they belong to.

    A cut upload's checkpoint file is part of it, and so are sidecars a commit cut
    short left as partials (kill -9 between its renames): they count with their
    backup's partial file, or once per backup if that file is gone.
    """
    uploads = 0
    data: set[str] = set()
    sidecars: set[str] = set()
    for partial in partials:
        if is_checkpoint(partial.name):
            continue
        kind, name = partial_of(partial.name)
        if kind in SIDECAR_SUFFIXES and name is not None:
            sidecars.add(name.filename)
            continue
        uploads += 1
        if name is not None:
            data.add(name.filename)
    return uploads + len(sidecars - data)


def member_status(member: Member, archive: MemberArchive, now: float | None = None) -> MemberStatus:
    """Summarise one member; age is from the newest restorable snapshot's creation time.

    A snapshot the NAS still has gives its creation; if the NAS has pruned every
    archived one, the archive's own record (sidecar, else upload time) is used.
    """
    now = time.time() if now is None else now
    files = trust_by_name(archive.files)
    chains = restore_chains(files)
    archived = archived_snapshots(member.snapshots, files, chains)
    newest = archived[-1] if archived else None
    chain = (archived_chain(newest, files, chains) or []) if newest else []
    if newest is not None:
        age: float | None = (now - newest.creation) / 3600
    else:
        points = restore_points(files)
        if points:
            chain = points[-1].chain
            age = (now - _snapshot_time(chain[-1])) / 3600
        else:
            age = None
    sound = [f for f in files if f.sound]  # a corrupt newest file is reported as corrupt
    newest_file = max(sound, key=lambda f: f.archived_at) if sound else None
    return MemberStatus(
        member=member.name,
        newest_local=member.newest.name if member.newest else None,
        newest_archived=newest.name if newest else (chain[-1].name.snapshot if chain else None),
        archived_age_hours=age,
        chain_length=len(chain),
        archive_bytes=sum(f.size for f in files),
        partial_files=partial_uploads(archive.partials),
        ignored_files=len(archive.ignored),
        findings=sum(f.sidecar_problem is not None and not f.untrusted_name for f in files)
        + len(archive.not_files),
        backup_files=len(files),
        corrupt_files=[f.filename for f in files if not f.sound and not f.untrusted_name],
        unchained_files=[f.filename for f in files if f.sound and f.filename not in chains],
        newest_file_restorable=newest_file is None or newest_file.filename in chains,
        unverified_in_chain=sum(1 for f in chain if not f.has_sidecar),
        untrusted_files=[
            f.sidecar_problem for f in files if f.untrusted_name and f.sidecar_problem
        ],
    )


def orphaned_directories(
    directories: Iterable[str], members: Sequence[Member], pool: str
) -> dict[str, str]:
    """Member directories no member of the pool backs up, each with one line saying what to do."""
    known = {m.name for m in members}
    return {
        name: f"{name}/ on the backup server belongs to no member of pool {pool} (its dataset "
        "was renamed or destroyed on the NAS, or is no longer selected), so nothing is added "
        f"to it: its restore points stay (zfs-offsite restore {name} <new dataset>), verify "
        "and prune still cover it; if the dataset still exists, select it again (a renamed "
        "one is backed up as a new member, starting with a full), and move the directory off "
        "the target once its restore points are no longer needed"
        for name in sorted(directories)
        if name not in known
    }


def read_status(store: Store, member: Member, now: float | None = None) -> MemberStatus:
    """One member's status from its directory; a dataset that is no member shows its error."""
    if member.error is not None:
        newest = member.newest.name if member.newest else None
        return MemberStatus(member.name, newest, None, None, 0, 0, 0, 0, error=member.error)
    return member_status(member, read_archive(store, member.name, member.dataset_part), now)


def judge(status: MemberStatus, thresholds: Thresholds) -> tuple[Health, list[str]]:
    """The member's verdict and every reason for it (worst first)."""
    if status.error is not None:  # it cannot be backed up at all
        return Health.CRITICAL, [status.error]
    critical: list[str] = []
    warning: list[str] = []
    if status.backup_files == 0:
        critical.append("no backup")
    if status.corrupt_files:
        critical.append(f"corrupt: {', '.join(status.corrupt_files)}")
    if status.backup_files and not status.newest_file_restorable:
        critical.append("broken chain: the newest file cannot be restored from a full")
    age = status.archived_age_hours
    if age is not None:
        if age > thresholds.critical_hours:
            critical.append(f"newest backup {age:.3g} h old (> {thresholds.critical_hours:g} h)")
        elif age > thresholds.warning_hours:
            warning.append(f"newest backup {age:.3g} h old (> {thresholds.warning_hours:g} h)")
    elif status.backup_files:
        critical.append("nothing restorable")
    if status.unverified_in_chain:
        warning.append(f"unverified: {status.unverified_in_chain} seed-era file(s) in the chain")
    orphans = status.unchained_files if status.newest_file_restorable else []
    if orphans:
        warning.append(f"in no restorable chain: {', '.join(orphans)}")
    warning += status.untrusted_files
    if status.findings:
        warning.append(f"{status.findings} file(s) with a sidecar problem: run zfs-offsite verify")
    if critical:
        return Health.CRITICAL, critical + warning
    if warning:
        return Health.WARNING, warning
    return Health.OK, []
