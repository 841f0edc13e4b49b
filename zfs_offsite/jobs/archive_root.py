"""`init` and `adopt`: make a directory this tool's archive, explicitly, once.

A backup writes the archive marker itself only where it can tell a first
backup from an unmounted disk (`archive/identity.establish`); a seed archive
(files without sidecars) needs the admin's word that it is the archive.
"""

from __future__ import annotations

from contextlib import closing

from zfs_offsite.archive.identity import ArchiveMarker, adopt_archive, init_archive
from zfs_offsite.connect import open_store
from zfs_offsite.settings import Settings


def init(settings: Settings) -> ArchiveMarker:
    """A new, empty archive at target.url (its root and parents are created, private)."""
    with closing(open_store(settings.target)) as store:
        return init_archive(store)


def adopt(settings: Settings) -> ArchiveMarker:
    """Mark the existing seed (or earlier zfs-offsite) archive at target.url as the archive."""
    with closing(open_store(settings.target)) as store:
        return adopt_archive(store)
