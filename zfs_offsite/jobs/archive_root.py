"""`init` and `adopt`: make a directory this tool's archive, explicitly, once.

A backup writes the archive marker itself only where it can tell a first
backup from an unmounted disk (`archive/identity.establish`); a seed archive
(files without sidecars) needs the admin's word that it is the archive.
Adopting also records the archive on each source dataset whose directory holds
backups (`zfs/record.py`): a backup writes that record only after it stores a
file, and until then an unmounted disk at this target would look like a first
backup.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass, field, replace

from zfs_offsite.archive.identity import ArchiveMarker, adopt_archive, init_archive, read_marker
from zfs_offsite.archive.index import archived_members
from zfs_offsite.archive.names import Kind, checksum_name, classify
from zfs_offsite.connect import open_runner, open_store
from zfs_offsite.errors import ZfsOffsiteError
from zfs_offsite.jobs.backup import discover_members
from zfs_offsite.remote.store import Store
from zfs_offsite.settings import Settings
from zfs_offsite.zfs.record import record_archive, record_property


@dataclass(frozen=True)
class Adoption:
    """The new marker, and what the source was told of it."""

    marker: ArchiveMarker
    recorded: list[str] = field(default_factory=list)  # datasets that carry the record now
    problems: list[str] = field(default_factory=list)  # one line each: what was not recorded
    seed_files: int = 0  # backup files without a checksum sidecar (the seed wrote them)
    adopted_before: bool = False  # the root was the archive already: only records were set


def init(settings: Settings) -> ArchiveMarker:
    """A new, empty archive at target.url (its root and parents are created, private)."""
    with closing(open_store(settings.target)) as store:
        return init_archive(store)


def adopt(settings: Settings) -> Adoption:
    """Mark the existing seed (or earlier zfs-offsite) archive at target.url as the archive.

    On a root that is the archive already, only the records are set: an earlier
    `adopt` that could not reach the source is completed by running it again.
    """
    with closing(open_store(settings.target)) as store:
        if (marker := read_marker(store)) is not None:
            return replace(record_on_source(settings, store, marker), adopted_before=True)
        return record_on_source(settings, store, adopt_archive(store))


def backup_files(store: Store, member: str) -> tuple[int, int]:
    """(backup files, of them without a `.sha256`) in the member's directory; (0, 0) if none."""
    try:
        names = {entry.name for entry in store.listdir(member)}
    except (OSError, ZfsOffsiteError):
        return 0, 0
    backups = [n for n in names if classify(n)[0] is Kind.BACKUP]
    return len(backups), sum(checksum_name(n) not in names for n in backups)


def record_on_source(settings: Settings, store: Store, marker: ArchiveMarker) -> Adoption:
    """Record the adopted archive on every member dataset with backups in it; never raises."""
    with_backups: set[str] = set()
    seed_files = 0
    for name in archived_members(store):
        backups, unchecked = backup_files(store, name)
        seed_files += unchecked
        if backups:
            with_backups.add(name)
    prop = record_property(str(settings.target.parsed))
    recorded: list[str] = []
    problems: list[str] = []
    try:
        with closing(open_runner(settings)) as runner:
            for member in discover_members(settings, runner):
                if member.name not in with_backups:
                    continue
                done = record_archive(runner, member.dataset, prop, marker.archive_id)
                if done.startswith("failed"):
                    problems.append(f"{member.dataset}: {prop} not set ({done})")
                else:
                    recorded.append(member.dataset)
    except (OSError, ZfsOffsiteError) as exc:
        problems.append(f"the source could not be read ({str(exc).splitlines()[0]})")
    return Adoption(marker, recorded, problems, seed_files)
