"""The remote index: what a member's directory on the backup server holds.

The directory is the source of truth for what is backed up. Each backup file
may have two sidecars: `<file>.sha256` (for `sha256sum -c`) and `<file>.json`
(GUIDs and figures a restore and plan/ need). Seed-era files have none.
A file this tool wrote (`.zst`, or one with a `.sha256`) whose `.json` is
missing or unreadable is not taken for a seed-era file: it is reported and
never used as a base or restore link, since its identity cannot be established.
Nor is a sidecar-less file written after this tool's first file in the
directory: the jobs read a directory through `jobs/archive_read.py`, which
applies that rule (`plan.chains.trust_by_name`).
"""

from __future__ import annotations

import logging
from collections import Counter

from zfs_offsite.archive.model import (
    ArchiveFile,
    MemberArchive,
    Sidecar,
    check_member_name,
    checksum_line,
)
from zfs_offsite.archive.names import (
    NESTED_SEPARATOR,
    SIDECAR_SUFFIXES,
    BackupName,
    Compression,
    Kind,
    checksum_name,
    classify,
    corrupt_mark_name,
    is_member_name,
    metadata_name,
)
from zfs_offsite.errors import PermanentError
from zfs_offsite.remote.store import Store, read_small_file
from zfs_offsite.values.entries import StoreEntry

log = logging.getLogger(__name__)


def read_member_archive(store: Store, member: str, dataset_part: str | None) -> MemberArchive:
    """List a member's directory and read the sidecars; unknown files are kept and reported.

    `dataset_part` None (a restore where the source dataset is gone) takes the
    dataset part that most backup files in the directory name. Directories and
    symlinks are never read, followed or taken for backups; files of this tool
    whose sidecars are missing or unreadable carry a `sidecar_problem`.
    """
    check_member_name(member)
    entries = store.listdir(member)
    if dataset_part is None:
        dataset_part = _common_dataset_part(entries)
    by_name = {e.name: e for e in entries}
    archive = MemberArchive(member, entries=by_name)
    for entry in entries:
        kind, name = classify(entry.name)
        ours = name is not None and name.dataset == dataset_part
        if not is_file(entry):
            archive.ignore(entry.name, _not_a_file(entry))
            if ours:
                archive.not_files.append(entry.name)
            continue
        if kind is Kind.PARTIAL:
            archive.partials.append(entry)
            continue
        if kind in SIDECAR_SUFFIXES or kind is Kind.TOOL:
            continue
        if kind is Kind.UNKNOWN or name is None or not ours:
            archive.ignore(entry.name, f"not a backup file of {dataset_part}")
            continue
        sidecar, problem = _sidecars(store, member, entry.name, name, by_name)
        corrupt = _corrupt_mark(store, member, by_name.get(corrupt_mark_name(entry.name)))
        archive.files.append(
            ArchiveFile(entry.name, name, entry.size, entry.mtime, sidecar, corrupt, problem)
        )
    return archive


def is_file(entry: StoreEntry) -> bool:
    """A regular file by the listing (lstat): only those are read, renamed or deleted."""
    return not (entry.is_dir or entry.is_symlink)


def _not_a_file(entry: StoreEntry) -> str:
    what = "a symlink (never followed)" if entry.is_symlink else "a directory"
    return f"{entry.name} is {what}, not a file"


def _common_dataset_part(entries: list[StoreEntry]) -> str | None:
    names = [n for e in entries if is_file(e) if (n := classify(e.name))[0] is Kind.BACKUP]
    parts = Counter(name.dataset for _, name in names if name is not None)
    return parts.most_common(1)[0][0] if parts else None


# What a file without a usable `.json` is, and the fix.
_NO_IDENTITY = (
    "its snapshot GUIDs are unknown, so it is no base and no restore link; "
    "put the .json back from a copy, or move the file aside"
)


def _sidecars(
    store: Store, member: str, filename: str, name: BackupName, by_name: dict[str, StoreEntry]
) -> tuple[Sidecar | None, str | None]:
    """The file's sidecar, and a one-line problem if `.json` or `.sha256` is not as written."""
    metadata = by_name.get(metadata_name(filename))
    checksum = by_name.get(checksum_name(filename))
    if metadata is None:
        # The seed wrote only `.gz` files and no sidecars: anything else is ours.
        seed_like = name.compression is Compression.GZIP and not name.encrypted
        if seed_like and checksum is None:
            return None, None  # seed era: the name is all there is
        why = f"a {name.suffix} file" if not seed_like else "it has a .sha256"
        return None, (
            f"{metadata_name(filename)} is missing (this tool wrote the file: {why}): "
            f"{_NO_IDENTITY}"
        )
    if not is_file(metadata):
        return None, f"{_not_a_file(metadata)}: {_NO_IDENTITY}"
    sidecar, why = _read_sidecar(store, f"{member}/{metadata.name}")
    if sidecar is None:
        return None, f"{metadata.name} is unreadable ({why}): {_NO_IDENTITY}"
    if (sidecar.snapshot, sidecar.base) != (name.snapshot, name.base):
        return None, (
            f"{metadata.name} records {sidecar.base or 'full'} -> {sidecar.snapshot}, but the "
            f"file name says {name.base or 'full'} -> {name.snapshot}: {_NO_IDENTITY}"
        )
    if name.dataset not in dataset_parts(sidecar.dataset):
        # A file copied or moved from another member's directory: its GUIDs are not ours.
        return None, (
            f"{metadata.name} records dataset {sidecar.dataset}, but the file name says "
            f"{name.dataset}: it belongs to another member; {_NO_IDENTITY}"
        )
    recreate = (
        f"recreate it as the line '{checksum_line(sidecar.sha256, filename).decode().strip()}'"
    )
    if checksum is None:
        return sidecar, f"{checksum_name(filename)} is missing: {recreate}"
    if not is_file(checksum):
        return sidecar, f"{_not_a_file(checksum)}: move it aside and {recreate}"
    return sidecar, None


def _read_sidecar(store: Store, path: str) -> tuple[Sidecar | None, str]:
    """The sidecar, or None and why it cannot be read (any content, any read failure)."""
    try:
        return Sidecar.from_json(read_small_file(store, path)), ""
    except (OSError, PermanentError) as exc:  # not StoreError: a dropped link is retried
        return None, _one_line(exc)
    except ValueError as exc:
        return None, str(exc)


def _corrupt_mark(store: Store, member: str, mark: StoreEntry | None) -> str | None:
    """Why verify marked the file corrupt; a mark that cannot be read still marks it."""
    if mark is None:
        return None
    if not is_file(mark):
        return _not_a_file(mark)
    try:
        text = read_small_file(store, f"{member}/{mark.name}").decode(errors="replace")
    except (OSError, PermanentError) as exc:
        return f"marked corrupt; the mark is unreadable ({_one_line(exc)})"
    return text.strip().splitlines()[0] if text.strip() else "marked corrupt"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def archived_members(store: Store) -> list[str]:
    """Member directories on the backup server: every directory at the root that can be one.

    Hidden names and `lost+found` are skipped (`is_member_name`: backup never
    creates them, a filesystem or the tool's own records do). Files at the root
    (the drill and verify records) are the tool's own; symlinks are never followed.
    """
    return [
        e.name
        for e in store.listdir("")
        if e.is_dir and not e.is_symlink and is_member_name(e.name)
    ]


def linked_members(store: Store) -> dict[str, str]:
    """Symlinks at the target's root, and why each is reported instead of verified or pruned.

    A link is never followed (prune would delete through it), so a member
    directory that is a link fails that member with this one line.
    """
    linked = {
        e.name: f"{e.name} at the target's root is a symlink, never followed: if it is a "
        "member directory, make it a real one (or point target.url at where it links)"
        for e in store.listdir("")
        if e.is_symlink and is_member_name(e.name)
    }
    for reason in linked.values():
        log.warning("%s", reason)
    return linked


def dataset_parts(dataset: str) -> set[str]:
    """The file-name parts discovery can give a dataset: `pool/a/b` -> `a~b` (or `pool~a~b`
    when it is not below source.pool)."""
    relative = dataset.split("/", 1)[1] if "/" in dataset else dataset
    return {relative.replace("/", NESTED_SEPARATOR), dataset.replace("/", NESTED_SEPARATOR)}
