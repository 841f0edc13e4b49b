"""Keep the next incremental's base on the source: a bookmark or a hold on the newest upload.

The NAS prunes its own snapshots (`-1w`); if the last uploaded snapshot goes,
the next night has no common base and must send a full. After each upload the
tool marks the uploaded snapshot and clears its older marks, so exactly one
snapshot per member and target is marked, and a hold never outlives the next
successful night. Bookmarks (OpenZFS) cost nothing and block nothing; holds
(zfs-fuse, old ZFS) keep the snapshot itself until released.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from enum import StrEnum

from zfs_offsite.errors import PermanentError
from zfs_offsite.zfs.commands import (
    bookmark_argv,
    destroy_argv,
    hold_argv,
    holds_argv,
    parse_hold_tags,
    release_argv,
)
from zfs_offsite.zfs.members import Member
from zfs_offsite.zfs.model import Snapshot, ZfsFeatures
from zfs_offsite.zfs.record import recorded, target_digest
from zfs_offsite.zfs.runner import Runner, last_line

log = logging.getLogger(__name__)


class Mechanism(StrEnum):
    BOOKMARK = "bookmark"
    HOLD = "hold"
    OFF = "off"


def mark_tag(target: str) -> str:
    """A hold tag / bookmark prefix per backup target, so two targets never clear each other's."""
    return "zfs-offsite-" + target_digest(target)


def choose(setting: str, features: ZfsFeatures) -> Mechanism:
    """`auto`: a bookmark where the ZFS has them, else a hold."""
    if setting == "auto":
        if features.bookmarks:
            return Mechanism.BOOKMARK
        return Mechanism.HOLD if features.holds else Mechanism.OFF
    if setting == "bookmark" and not features.bookmarks:
        log.warning("protect_base=bookmark, but this ZFS has no bookmarks: using a hold")
        return Mechanism.HOLD
    return Mechanism(setting)


def bookmark_name(snapshot: Snapshot, tag: str) -> str:
    return f"{snapshot.dataset}#{tag}_{snapshot.name}"


def stale_marks(member: Member, tag: str, keep: Snapshot) -> tuple[str, ...]:
    """Marks that may be ours on other snapshots: held snapshots and our tag's bookmarks."""
    held = [s.full_name for s in member.snapshots if s.userrefs and s.guid != keep.guid]
    ours = [
        b.full_name
        for b in member.bookmarks
        if b.name.startswith(tag + "_") and b.full_name != bookmark_name(keep, tag)
    ]
    return (*held, *ours)


def marked_before(
    runner: Runner, members: Sequence[Member], tag: str, record: str | None = None
) -> str | None:
    """The members with a mark of this target's tag (a bookmark, or a hold) or this target's
    archive record (the user property `record`, zfs/record.py): the proof that the tool backed
    up to this target before, one member named with it and the others counted, so the line is
    true for every member that reads it; None if there is none.

    Records and bookmarks are seen in the listing; a held snapshot is asked for
    its tags (another tool's or another target's hold is no proof), a `zfs holds`
    per held snapshot, and only for a member without a record or bookmark.
    Asked only when the archive root is missing or empty."""
    found: list[tuple[int, str]] = []  # (how strong: record, bookmark, hold; the member named)
    for member in members:
        if (proof := _proof(runner, member, tag, record)) is not None:
            found.append(proof)
    if not found:
        return None
    named = min(found, key=lambda proof: proof[0])[1]  # the first of the strongest kind
    others = len(found) - 1
    if not others:
        return named
    return f"{named}, with {others} more dataset{'s' if others > 1 else ''},"


def _proof(runner: Runner, member: Member, tag: str, record: str | None) -> tuple[int, str] | None:
    """This member's proof of an earlier backup to the target, strongest kind first."""
    if record is not None and (archive_id := recorded(member, record)) is not None:
        return 0, f"{member.dataset} ({record}={archive_id})"
    for mark in member.bookmarks:
        if mark.name.startswith(tag + "_"):
            return 1, f"{member.dataset} (bookmark #{mark.name})"
    for snapshot in member.snapshots:
        if snapshot.userrefs and _held_by(runner, tag, snapshot):
            return 2, f"{member.dataset} (hold {tag} on @{snapshot.name})"
    return None


def _held_by(runner: Runner, tag: str, snapshot: Snapshot) -> bool:
    """Whether `tag` holds `snapshot`. Where `zfs holds` does not work (zfs-fuse's needs a
    Python module it lacks), `zfs hold` answers: "already exists" is ours; a new hold
    (not ours) is released at once, so no existing mark moves. Unsure counts as held:
    refusing a write is the safe mistake (`zfs-offsite init` overrides it)."""
    listed = runner.run(holds_argv(snapshot.full_name), check=False)
    if listed.returncode == 0:
        return tag in parse_hold_tags(listed.stdout)
    probe = runner.run(hold_argv(tag, snapshot.full_name), check=False)
    if probe.returncode != 0:
        return True  # "tag already exists", or a zfs that cannot say: not a first backup
    released = runner.run(release_argv(tag, snapshot.full_name), check=False)
    if released.returncode != 0:
        log.warning("could not release the probe hold %s on %s", tag, snapshot.full_name)
    return False


def protect(
    runner: Runner, mechanism: Mechanism, tag: str, snapshot: Snapshot, stale: Sequence[str]
) -> str:
    """Mark `snapshot`, then clear older marks; returns what was done, for the report."""
    if mechanism is Mechanism.OFF:
        return "off"
    if mechanism is Mechanism.BOOKMARK:
        mark = bookmark_name(snapshot, tag)
        result = runner.run(bookmark_argv(snapshot.full_name, mark), check=False)
        if result.returncode != 0 and "exists" not in result.stderr:
            raise_failed(result.stderr, mark)
        for old in (s for s in stale if "#" in s):
            runner.run(destroy_argv(old), check=False)
        return f"bookmark #{mark.partition('#')[2]}"
    result = runner.run(hold_argv(tag, snapshot.full_name), check=False)
    if result.returncode != 0 and "already exists" not in result.stderr:
        raise_failed(result.stderr, f"hold {tag} on {snapshot.full_name}")
    for old in (s for s in stale if "@" in s):
        released = runner.run(release_argv(tag, old), check=False)
        if released.returncode == 0:
            log.info("released %s from %s", tag, old)
    return f"hold {tag} on @{snapshot.name}"


def raise_failed(stderr: str, what: str) -> None:
    raise PermanentError(f"cannot mark {what}: {last_line(stderr)}")
