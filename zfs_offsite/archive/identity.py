"""The archive knows it is the archive: a marker file at its root, and what a root without one is.

A backup to `file:///mnt/usb/archive` with the disk not mounted, or to an SFTP
server whose data disk is not mounted, sees a missing or empty root. Writing
there would put new fulls on the wrong disk and move the base marks off the
real archive's base. The marker `.zfs-offsite-archive.json` (a dot name: never
a member) tells an archive apart from an empty directory; `classify_root` says
what a root without one holds, and `establish` turns that into go on, write the
marker, or refuse with one line. The evidence that the source was backed up
before (the tool's holds and bookmarks) comes from the caller (`jobs/`).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum

from zfs_offsite import __version__
from zfs_offsite.archive.names import TOOL_FILE_PREFIX, Kind, classify, is_member_name
from zfs_offsite.errors import DiskFullError, PermanentError, ZfsOffsiteError
from zfs_offsite.remote.store import (
    Store,
    absent_root_question,
    disk_full,
    read_small_file,
    write_small_file,
)
from zfs_offsite.values.entries import StoreEntry

log = logging.getLogger(__name__)

MARKER_NAME = ".zfs-offsite-archive.json"
ADOPT_HINT = "run `zfs-offsite adopt` once to make it this tool's archive"


class ArchiveRootError(PermanentError):
    """The archive root is missing, empty where an archive was, or not yet adopted."""


class RootState(StrEnum):
    MARKED = "marked"  # the marker is there: this is the archive
    MISSING = "missing"  # the root does not exist
    EMPTY = "empty"  # nothing but hidden names and lost+found
    EARLIER_TOOL = "earlier tool"  # files an earlier zfs-offsite wrote (sidecars, records)
    SEED = "seed"  # backup files without sidecars only: the seed's cron jobs wrote them
    FOREIGN = "foreign"  # directories holding files that are no backup
    NOT_A_DIRECTORY = "not a directory"


@dataclass(frozen=True)
class RootSurvey:
    state: RootState
    example: str = ""  # a path that shows why (for the log line or the error)


@dataclass(frozen=True)
class ArchiveMarker:
    archive_id: str
    created: str
    tool_version: str
    how: str  # first backup, init, adopt, upgrade (an archive of an earlier version)

    def to_json(self) -> bytes:
        return (json.dumps({"format": 1, **asdict(self)}, indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> ArchiveMarker:
        value = json.loads(data)
        return cls(
            str(value["archive_id"]),
            str(value["created"]),
            str(value["tool_version"]),
            str(value.get("how", "")),
        )


def new_marker(how: str) -> ArchiveMarker:
    return ArchiveMarker(str(uuid.uuid4()), datetime.now(UTC).isoformat(), __version__, how)


def classify_root(
    root: StoreEntry | None,
    top: Sequence[StoreEntry],
    listings: Callable[[str], Sequence[StoreEntry]],
) -> RootSurvey:
    """What a root holds, from its entry, its listing and its member directories' listings.

    Pure but for `listings` (called for member directories only, and only when
    the marker is absent, so a marked archive costs nothing more)."""
    if root is None:
        return RootSurvey(RootState.MISSING)
    if not root.is_dir and not root.is_symlink:  # a linked root is followed: admins do that
        return RootSurvey(RootState.NOT_A_DIRECTORY)
    names = {entry.name for entry in top}
    if MARKER_NAME in names:
        return RootSurvey(RootState.MARKED)
    records = sorted(n for n in names if n.startswith(TOOL_FILE_PREFIX))
    if records:
        return RootSurvey(RootState.EARLIER_TOOL, records[0])
    seed = foreign = ""
    for entry in top:
        if not entry.is_dir or entry.is_symlink or not is_member_name(entry.name):
            continue  # hidden names, lost+found, loose files: not an archive's
        try:
            children = listings(entry.name)
        except (OSError, ZfsOffsiteError):
            continue  # unreadable: that member fails alone when it is planned
        for child in children:
            kind, _ = classify(child.name)
            path = f"{entry.name}/{child.name}"
            if kind in (Kind.CHECKSUM, Kind.METADATA, Kind.TOOL, Kind.PARTIAL, Kind.CORRUPT_MARK):
                return RootSurvey(RootState.EARLIER_TOOL, path)
            if kind is Kind.BACKUP:
                seed = seed or path
            else:
                foreign = foreign or path
    if seed:
        return RootSurvey(RootState.SEED, seed)
    if foreign:
        return RootSurvey(RootState.FOREIGN, foreign)
    return RootSurvey(RootState.EMPTY)


def survey_root(store: Store) -> RootSurvey:
    """Look at the root: one stat when the marker is there, a listing walk when not."""
    marker = store.stat(MARKER_NAME)
    if marker is not None and not marker.is_dir and not marker.is_symlink:
        return RootSurvey(RootState.MARKED)
    return classify_root(store.stat(""), store.listdir(""), lambda name: store.listdir(name))


def read_marker(store: Store) -> ArchiveMarker | None:
    """The marker, or None if there is none; an unreadable marker is an error naming it."""
    if store.stat(MARKER_NAME) is None:
        return None
    try:
        return ArchiveMarker.from_json(read_small_file(store, MARKER_NAME))
    except (OSError, ValueError, KeyError, TypeError, ZfsOffsiteError) as exc:
        raise ArchiveRootError(
            f"archive marker {store.description}/{MARKER_NAME} is unreadable ({exc}): "
            "restore it from a copy, or remove it and run `zfs-offsite adopt`"
        ) from exc


def write_marker(store: Store, how: str) -> ArchiveMarker:
    """Write a new marker atomically (a checked partial file, renamed into place)."""
    marker = new_marker(how)
    try:
        write_small_file(store, MARKER_NAME, marker.to_json())
    except DiskFullError as exc:
        needed = "a few bytes for the archive marker"
        raise disk_full(store, exc, MARKER_NAME, needed=needed) from exc
    log.info("%s: archive marker written (%s, id %s)", store.description, how, marker.archive_id)
    return marker


def establish(store: Store, evidence: Callable[[], str | None], *, write: bool = True) -> None:
    """Make sure a backup may write to this store's root, before it writes anything.

    `evidence` names a dataset the tool backed up to this target before (its
    holds or bookmarks), or None; it is asked only when the root is missing or
    empty. With `write` False (a dry run) nothing is created, but every refusal
    still raises.
    """
    survey = survey_root(store)
    root = store.description
    if survey.state is RootState.MARKED:
        return
    if survey.state is RootState.NOT_A_DIRECTORY:
        raise ArchiveRootError(
            f"archive root {root} is not a directory: point target.url at the archive's directory"
        )
    if survey.state in (RootState.MISSING, RootState.EMPTY):
        what = "missing" if survey.state is RootState.MISSING else "empty"
        if (dataset := evidence()) is not None:
            raise ArchiveRootError(
                f"archive root {root} is {what} but {dataset} was backed up there before: "
                f"{absent_root_question(store)} (mount it and run again; if that "
                "archive is really gone, run `zfs-offsite init` to start a new one)"
            )
        if write:
            store.create_root()
            write_marker(store, "first backup")
            log.info("%s: a new archive (the root was %s)", root, what)
        return
    if survey.state is RootState.EARLIER_TOOL:
        if write:
            write_marker(store, "upgrade")
            log.info(
                "%s: an archive of an earlier zfs-offsite (%s): marker written",
                root,
                survey.example,
            )
        return
    if survey.state is RootState.SEED:
        raise ArchiveRootError(
            f"archive root {root} holds seed-era backups without a marker "
            f"(e.g. {survey.example}): {ADOPT_HINT}"
        )
    raise ArchiveRootError(
        f"archive root {root} holds files that are no zfs-offsite backup "
        f"(e.g. {survey.example}): point target.url at an empty directory or the archive"
    )


def init_archive(store: Store) -> ArchiveMarker:
    """`zfs-offsite init`: a new archive in a missing or empty root."""
    survey = survey_root(store)
    root = store.description
    if survey.state is RootState.MARKED:
        raise ArchiveRootError(f"archive root {root} is an archive already: nothing to do")
    if survey.state in (RootState.SEED, RootState.EARLIER_TOOL):
        raise ArchiveRootError(
            f"archive root {root} holds backups (e.g. {survey.example}): "
            "run `zfs-offsite adopt` to keep them, or choose an empty directory"
        )
    if survey.state not in (RootState.MISSING, RootState.EMPTY):
        raise ArchiveRootError(
            f"archive root {root} is {survey.state.value}"
            + (f" (e.g. {survey.example})" if survey.example else "")
            + ": point target.url at an empty or new directory"
        )
    store.create_root()
    return write_marker(store, "init")


def adopt_archive(store: Store) -> ArchiveMarker:
    """`zfs-offsite adopt`: mark an existing seed (or earlier zfs-offsite) archive as this one."""
    survey = survey_root(store)
    root = store.description
    if survey.state is RootState.MARKED:
        raise ArchiveRootError(f"archive root {root} is an archive already: nothing to do")
    if survey.state not in (RootState.SEED, RootState.EARLIER_TOOL):
        what = {
            RootState.MISSING: f"missing: {absent_root_question(store)}",
            RootState.EMPTY: f"empty: {absent_root_question(store)} "
            "(`zfs-offsite init` starts a new one)",
        }.get(survey.state, f"{survey.state.value}: no backups to adopt")
        raise ArchiveRootError(f"archive root {root} is {what}")
    return write_marker(store, "adopt")


def root_note(store: Store) -> str | None:
    """What a read-only command (plan, status, verify) should say about the root; None: nothing.

    A missing or empty root is the unmounted disk (or a first backup to come); a
    seed archive still plans and verifies, but a backup needs `adopt` first."""
    survey = survey_root(store)
    root = store.description
    return {
        RootState.MISSING: f"archive root {root} is missing: {absent_root_question(store)} "
        "(a first backup or `zfs-offsite init` creates it)",
        RootState.EMPTY: f"archive root {root} is empty: {absent_root_question(store)} "
        "(a first backup or `zfs-offsite init` makes an archive there)",
        RootState.NOT_A_DIRECTORY: f"archive root {root} is not a directory: "
        "point target.url at the archive's directory",
        RootState.SEED: f"archive root {root} holds seed-era backups without a marker: "
        "backup refuses until you run `zfs-offsite adopt` (once)",
        RootState.FOREIGN: f"archive root {root} holds files that are no zfs-offsite backup "
        f"(e.g. {survey.example}): backup will refuse to write there",
    }.get(survey.state)


def require_root(store: Store) -> None:
    """Refuse to read an archive that is not there (status, verify): missing is not ok."""
    if survey_root(store).state in (RootState.MISSING, RootState.EMPTY, RootState.NOT_A_DIRECTORY):
        raise ArchiveRootError(root_note(store) or store.description)
