"""Pure: restore chains, restore points and the diagnosis of a missing link."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from zfs_offsite.archive.model import ArchiveFile
from zfs_offsite.archive.names import BackupName
from zfs_offsite.errors import ChainError
from zfs_offsite.zfs.model import Snapshot


def trust_by_name(files: Sequence[ArchiveFile]) -> list[ArchiveFile]:
    """The member's files, each sidecar-less one that cannot be seed era marked as no link.

    A file without sidecars has only its name for an identity. The seed wrote
    such files; this tool never does (its commit renames the sidecars into
    place before the file). So a name is trusted only where the seed wrote: in a
    member directory where this tool has not yet written, or for a file older
    than this tool's first file there. Anything later without sidecars is
    someone else's (an old cron job still running, perhaps cut short), and
    trusting it made a truncated incremental the base of every later night.
    Every job that judges links (plan, restore, verify, prune, status, drill)
    sees the files through this one rule: `archive/index.py` applies it when
    it reads a directory, and the chain functions below apply it again (it is
    idempotent) so that no caller can bypass it.
    """
    ours = [f for f in files if f.by_this_tool]
    if not ours:
        return list(files)  # seed era: this tool has not written here yet
    first = min(ours, key=lambda f: f.written_from)
    # A date can be set back (touch -d, cp -p, rsync -t); a base this tool stored cannot.
    stored = {f.name.snapshot: f for f in ours}
    marked = []
    for f in files:
        if not _name_only(f):
            marked.append(f)
        elif f.mtime > first.written_from:
            marked.append(_not_a_link(f, first))
        elif f.name.base is not None and f.name.base in stored:
            marked.append(_not_a_link(f, stored[f.name.base], on_our_base=True))
        else:
            marked.append(f)
    return marked


def _name_only(file: ArchiveFile) -> bool:
    """No sidecar and no known sidecar problem: a file that only its name can identify."""
    return file.sidecar is None and file.sidecar_problem is None and not file.untrusted_name


def _not_a_link(file: ArchiveFile, first: ArchiveFile, *, on_our_base: bool = False) -> ArchiveFile:
    when = (
        f"builds on {first.filename}, which zfs-offsite stored (whatever its date says)"
        if on_our_base
        else f"was written after zfs-offsite's first file in this directory ({first.filename})"
    )
    problem = (
        f"{file.filename} has no .sha256 or .json but {when}, so it is not a seed-era file and "
        "its name proves nothing: it is no base and no restore link; stop whatever wrote it "
        "(an old cron job?), then move the file out of the member directory: no restore "
        "point uses it"
    )
    return replace(file, sidecar_problem=problem, untrusted_name=True)


def _links(file: ArchiveFile, previous: ArchiveFile) -> bool:
    """True if `previous`'s snapshot is `file`'s base (same name; same GUID where both known).

    A raw file (`zfs send -w`) follows only a raw one and a plain file only a
    plain one: `zfs receive` refuses a raw incremental on a dataset received
    unencrypted, and the other way round.
    """
    if file.name.base != previous.name.snapshot or file.raw != previous.raw:
        return False
    return _guid_matches(file, previous)


def _guid_matches(file: ArchiveFile, previous: ArchiveFile) -> bool:
    """`previous` holds `file`'s base snapshot by GUID, where both GUIDs are known."""
    return (
        file.base_guid is None
        or previous.snapshot_guid is None
        or file.base_guid == previous.snapshot_guid
    )


def restore_chains(files: Sequence[ArchiveFile]) -> dict[str, list[ArchiveFile]]:
    """For each file that can be restored from a full, its shortest chain (full first).

    Files marked corrupt by verify are left out, so no chain (and no new
    incremental) is built on them.
    """
    files = [f for f in trust_by_name(files) if f.sound]
    by_snapshot: dict[str, list[ArchiveFile]] = {}
    for f in files:
        by_snapshot.setdefault(f.name.snapshot, []).append(f)
    chains: dict[str, list[ArchiveFile] | None] = {}

    def chain(f: ArchiveFile, visiting: frozenset[str]) -> list[ArchiveFile] | None:
        if f.filename in chains:
            return chains[f.filename]
        if f.name.is_full:
            result: list[ArchiveFile] | None = [f]
        else:
            options = [
                c
                for p in by_snapshot.get(f.name.base or "", [])
                if p.filename not in visiting and _links(f, p)
                if (c := chain(p, visiting | {f.filename})) is not None
            ]
            result = [*min(options, key=len), f] if options else None
        chains[f.filename] = result
        return result

    for f in files:
        chain(f, frozenset())
    return {name: c for name, c in chains.items() if c is not None}


def _matches(snapshot: Snapshot, file: ArchiveFile) -> bool:
    return file.name.snapshot == snapshot.name and file.snapshot_guid in (None, snapshot.guid)


def archived_chain(
    snapshot: Snapshot, files: Sequence[ArchiveFile], chains: dict[str, list[ArchiveFile]]
) -> list[ArchiveFile] | None:
    """The shortest chain (from `restore_chains(files)`) that restores `snapshot`, if any."""
    options = [chains[f.filename] for f in files if f.filename in chains and _matches(snapshot, f)]
    return min(options, key=len) if options else None


def archived_snapshots(
    snapshots: Iterable[Snapshot],
    files: Sequence[ArchiveFile],
    chains: dict[str, list[ArchiveFile]],
) -> list[Snapshot]:
    """Local snapshots the archive can restore, oldest first."""
    return [s for s in snapshots if archived_chain(s, files, chains)]


def base_key(file: ArchiveFile) -> str:
    if file.name.is_full:
        return "full"
    return str(file.base_guid) if file.base_guid is not None else f"name:{file.name.base}"


def between(
    snapshots: Sequence[Snapshot], base: Snapshot, target: Snapshot
) -> tuple[tuple[str, int], ...]:
    """(name, GUID) of the snapshots strictly between base and target, oldest first.

    What `zfs send -I base target` carries besides target (createtxg orders them).
    """
    return tuple(
        (s.name, s.guid)
        for s in sorted(snapshots, key=lambda s: s.createtxg)
        if base.createtxg < s.createtxg < target.createtxg
    )


def archived_guids(files: Sequence[ArchiveFile]) -> set[int]:
    """Every snapshot GUID the archive holds: each file's target and what its `-I` carries."""
    guids = {f.snapshot_guid for f in files if f.snapshot_guid is not None}
    return guids | {guid for f in files for _, guid in f.carries or ()}


@dataclass(frozen=True)
class RestorePoint:
    """A snapshot the archive can restore, and the files that restore it (full first).

    Usually the last file's target; a snapshot inside an `-I` file has that file
    last, and the restore rolls back to it after receiving the file.
    """

    snapshot: str
    guid: int | None
    chain: list[ArchiveFile]

    @property
    def inside(self) -> str | None:
        """The `-I` file that carries `snapshot` between its base and target, if it does."""
        last = self.chain[-1]
        return last.filename if last.name.snapshot != self.snapshot else None

    @property
    def archived_at(self) -> float:
        return self.chain[-1].archived_at


def restore_points(files: Sequence[ArchiveFile]) -> list[RestorePoint]:
    """Every restorable snapshot once (shortest chain), oldest archived first."""
    chains = restore_chains(files)
    best: dict[tuple[str, int | None], list[ArchiveFile]] = {}
    for chain in chains.values():
        last = chain[-1]
        key = (last.name.snapshot, last.snapshot_guid)
        if key not in best or len(chain) < len(best[key]):
            best[key] = chain
    points = [RestorePoint(t, g, c) for (t, g), c in best.items()]
    return sorted(points, key=lambda p: (p.archived_at, p.snapshot))


def choose_restore_point(files: Sequence[ArchiveFile], snapshot: str | None) -> RestorePoint:
    """The point to restore (default: newest archived), or a ChainError naming what is missing."""
    files = trust_by_name(files)
    points = restore_points(files)
    if snapshot is None:
        ours = [f for f in files if not f.untrusted_name]  # not a backup at all: no candidate
        if not ours:
            raise ChainError("the archive holds no backup files for this member")
        newest = max(ours, key=lambda f: f.archived_at)
        if points and points[-1].snapshot == newest.name.snapshot:
            return points[-1]
        older = f"; newest restorable: {points[-1].snapshot}" if points else ""
        raise ChainError(
            f"the newest archived snapshot {newest.name.snapshot} cannot be restored: "
            f"{missing_link(newest, files)}{older}"
        )
    matching = [p for p in points if p.snapshot == snapshot]
    if matching:
        return matching[-1]
    holding = sorted((f for f in files if f.name.snapshot == snapshot), key=lambda f: f.archived_at)
    if holding:
        raise ChainError(
            f"snapshot {snapshot} cannot be restored: {missing_link(holding[-1], files)}"
        )
    return point_inside(files, snapshot, points)


def point_inside(
    files: Sequence[ArchiveFile], snapshot: str, points: Sequence[RestorePoint]
) -> RestorePoint:
    """`snapshot` carried inside an `-I` file: the chain up to that file (shortest, newest).

    Only a sidecar's `carries` says what a file carries: a file without it (seed
    era, or a sidecar from before the field) is named in the error instead.
    """
    chains = restore_chains(files)
    carriers = [
        (chains[f.filename], guid)
        for f in files
        if f.filename in chains
        for name, guid in f.carries or ()
        if name == snapshot
    ]
    if carriers:
        chain, guid = min(carriers, key=lambda c: (len(c[0]), -c[0][-1].archived_at))
        return RestorePoint(snapshot, guid, chain)
    broken = [f for f in files if any(name == snapshot for name, _ in f.carries or ())]
    if broken:
        raise ChainError(
            f"snapshot {snapshot} is inside {broken[0].filename}, which cannot be restored: "
            f"{missing_link(broken[0], files)}"
        )
    known = ", ".join(p.snapshot for p in points) or "none"
    unknown = sorted(f.filename for f in files if not f.name.is_full and f.carries is None)
    if unknown:
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        shown = ", ".join(unknown[:3]) + more
        raise ChainError(
            f"no backup file has snapshot {snapshot} as its target, and {shown} cannot say "
            f"which snapshots they carry (no sidecar record: seed era or an older version); "
            f"restorable snapshots: {known}"
        )
    raise ChainError(
        f"no backup file has snapshot {snapshot}, as its target or inside an -I file; "
        f"restorable snapshots: {known}"
    )


def missing_link(file: ArchiveFile, files: Sequence[ArchiveFile]) -> str:
    """Walk back from `file` to the first link that is missing, corrupt or mismatched."""
    files = trust_by_name(files)
    current = next((f for f in files if f.filename == file.filename), file)
    seen = {file.filename}
    while True:
        if current.corrupt:
            return f"{current.filename} is marked corrupt ({current.corrupt})"
        if not current.identified:
            return f"{current.filename} cannot be a link: {current.sidecar_problem}"
        if current.name.is_full:
            return f"{file.filename} should restore from {current.filename}"  # not reached
        candidates = [f for f in files if f.name.snapshot == current.name.base]
        linked = [f for f in candidates if _links(current, f) and f.filename not in seen]
        if not linked:
            other = [f for f in candidates if _guid_matches(current, f) and f.raw != current.raw]
            if other:
                kinds = ("a raw send (zfs send -w)", "a plain send")
                mine, theirs = kinds if current.raw else kinds[::-1]
                return (
                    f"{current.filename} is {mine} and its base {other[0].filename} is "
                    f"{theirs}: zfs receive cannot mix them in one chain"
                )
            if candidates:
                return (
                    f"{current.filename} needs a base {current.name.base} with GUID "
                    f"{current.base_guid}, but {candidates[0].filename} has GUID "
                    f"{candidates[0].snapshot_guid}"
                )
            example = BackupName(
                current.name.dataset, current.name.base or "", current.name.compression
            )
            return (
                f"{current.filename} needs a file whose target is {current.name.base} "
                f"(e.g. {example.filename}), and there is none"
            )
        sound = [f for f in linked if f.sound]
        current = sound[0] if sound else linked[0]
        seen.add(current.filename)
