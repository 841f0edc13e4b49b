"""The source remembers its archive: a user property per target on each member dataset.

The archive marker (archive/identity.py) tells an archive from an empty
directory, but only when the disk is there. When the root is missing or empty,
the question is whether this target ever held an archive: holds and bookmarks
say so only while protect_base marks the base, and `protect_base = "off"` (or
marks cleared by hand) leaves nothing. So after a file of a member is committed,
the member dataset gets `zfs-offsite:archive-<target hash>=<archive id>`, which
no protect setting removes. Discovery reads it in its one `zfs get`
(`Member.archives`); `zfs/protect.marked_before` counts it as evidence.

Setting it is best effort: a NAS whose login may not `zfs set` (an appliance's
delegation) gets a warning, never a failed backup, since the file is stored.
"""

from __future__ import annotations

import hashlib
import logging

from zfs_offsite.zfs.commands import error_text, get_property_argv, set_property_argv
from zfs_offsite.zfs.members import ARCHIVE_RECORD_PREFIX, Member
from zfs_offsite.zfs.runner import Runner

log = logging.getLogger(__name__)


def target_digest(target: str) -> str:
    """8 hex digits of the target URL: names this target's marks and record (lowercase, as ZFS
    user property names must be)."""
    return hashlib.sha256(target.encode()).hexdigest()[:8]


def record_property(target: str) -> str:
    """`zfs-offsite:archive-<8 hex>`: a valid user property name (a colon; `[a-z0-9:._-]`)."""
    return ARCHIVE_RECORD_PREFIX + target_digest(target)


def recorded(member: Member, prop: str) -> str | None:
    """The archive id recorded on the member for this target, from discovery; None if none."""
    return dict(member.archives).get(prop)


def record_archive(runner: Runner, dataset: str, prop: str, archive_id: str) -> str:
    """Record `archive_id` on `dataset` unless it is there already; returns what was done.

    A different id recorded before is said in the log (a rotated disk, or a new
    archive after `init`), never refused. Failures are warnings: returned, not raised.
    """
    current = runner.run(get_property_argv(prop, dataset), check=False)
    before = current.stdout.strip() if current.returncode == 0 else ""
    if before == archive_id:
        return "recorded already"
    if before not in ("", "-"):
        log.info(
            "%s: the archive at this target is %s; %s was last backed up to archive %s "
            "there (a rotated disk, or a new archive): recording %s",
            dataset,
            archive_id,
            dataset,
            before,
            archive_id,
        )
    result = runner.run(set_property_argv(dataset, prop, archive_id), check=False)
    if result.returncode != 0:
        why = error_text(result.stderr)
        log.warning(
            "%s: stored, but the archive record %s could not be set (%s): without it, or a "
            "hold or bookmark, an unmounted disk looks like a first backup; allow `zfs set` "
            "of user properties to this login",
            dataset,
            prop,
            why,
        )
        return f"failed: {why}"
    return f"recorded {prop}"
