"""Pure decisions: what a member sends tonight, and how many fulls one night carries.

A plan is nothing, an incremental (from a snapshot or its bookmark) or a full.
Which files restore a snapshot is `chains.py`; when a full falls due, `cadence.py`.

Inputs are facts (local snapshots with GUIDs, the remote index); output is a
plan. Identity is the GUID where a sidecar records it, the name for seed-era
files: a name reused after a destroy does not match a recorded GUID.

A natively encrypted dataset is sent raw (`zfs send -w`) unless the settings
say never; a raw chain is continued only by raw files, a plain one only by
plain files, so changing either starts a new chain with a full.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from zfs_offsite.archive.model import ArchiveFile
from zfs_offsite.archive.names import BackupName, Compression
from zfs_offsite.plan.cadence import FullCadence, FullDue, ordinal
from zfs_offsite.plan.chains import (
    archived_chain,
    archived_snapshots,
    base_key,
    missing_link,
    restore_chains,
    restore_points,
    trust_by_name,
)
from zfs_offsite.zfs.members import Member
from zfs_offsite.zfs.model import Bookmark, Snapshot


class Action(StrEnum):
    FULL = "full"
    INCREMENTAL = "incremental"
    UP_TO_DATE = "up to date"
    NO_SNAPSHOTS = "no snapshots"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class BackupPlan:
    """What one member's backup will do; `reason` says why, for the report."""

    member: str
    dataset: str
    action: Action
    reason: str
    snapshot: Snapshot | None = None  # the snapshot to send: the newest
    base: Snapshot | None = None
    name: BackupName | None = None
    # The base the archived copy was (or will be) sent from: GUID, "full", or a
    # seed-era base name. It keys a run's upload cache, so a retried run finds
    # what it already uploaded even though the archive now says "up to date".
    upload_base: str = "full"
    # What `zfs send` starts from: the base snapshot, or a bookmark of it (`ds#mark`)
    # when the NAS has destroyed the snapshot; bookmarks allow `-i` only.
    send_from: str | None = None
    # Marks (holds, bookmarks) on older snapshots to clear once `snapshot` is marked.
    stale_marks: tuple[str, ...] = ()
    forced: bool = False  # a full the user asked for, even though `snapshot` is archived
    # Where the member's chain stands against the full cadence (None: no cadence).
    full_due: FullDue | None = None
    # On a full the cadence asks for: the incremental to send instead when the
    # night's quota of new chains is spent (see `apply_full_quota`).
    deferred: BackupPlan | None = None
    raw: bool = False  # `zfs send -w`: the dataset's blocks, still encrypted with its key

    @property
    def filename(self) -> str | None:
        return self.name.filename if self.name else None

    @property
    def sends(self) -> bool:
        return self.action in (Action.FULL, Action.INCREMENTAL)


def sends_raw(member: Member, raw_send: str) -> bool:
    """Raw for a natively encrypted dataset (`encryption` not off), unless `raw_send` is never.

    A raw stream needs no loaded key to send and stays unreadable without it;
    a plain send of an encrypted dataset would store its data decrypted.
    """
    return raw_send == "auto" and member.natively_encrypted


def _of_kind(chains: dict[str, list[ArchiveFile]], raw: bool) -> dict[str, list[ArchiveFile]]:
    """The chains made of raw files (or of plain ones): a chain never mixes them."""
    return {name: chain for name, chain in chains.items() if chain[-1].raw == raw}


def _bookmark_bases(
    member: Member, files: Sequence[ArchiveFile], chains: dict[str, list[ArchiveFile]]
) -> list[tuple[Snapshot, Bookmark]]:
    """Bookmarks of archived snapshots: (base as the archive names it, bookmark to send from)."""
    by_guid = {
        f.snapshot_guid: f for f in files if f.filename in chains and f.snapshot_guid is not None
    }
    bases = []
    for mark in member.bookmarks:
        file = by_guid.get(mark.guid)
        if file is not None:
            base = Snapshot(
                member.dataset, file.name.snapshot, mark.guid, mark.createtxg, mark.creation
            )
            bases.append((base, mark))
    return bases


def plan_backup(
    member: Member,
    files: Sequence[ArchiveFile],
    compression: Compression,
    *,
    force_full: bool = False,
    cadence: FullCadence | None = None,
    now: float = 0.0,
    encrypted: bool = False,
    raw_send: str = "auto",
    age_raw_sends: bool = False,
) -> BackupPlan:
    """`_plan_backup`, with every file that is no link by `trust_by_name` named in the reason.

    Such a file is never a base (so the newest snapshot goes from a real base, or as
    a full); its line says what to do, so the plan is where an admin first reads it.
    """
    files = trust_by_name(files)
    plan = _plan_backup(
        member,
        files,
        compression,
        force_full=force_full,
        cadence=cadence,
        now=now,
        encrypted=encrypted,
        raw_send=raw_send,
        age_raw_sends=age_raw_sends,
    )
    problems = (f.sidecar_problem for f in files if f.untrusted_name and f.sidecar_problem)
    notes = [p for p in problems if p not in plan.reason]  # a conflict's reason may name it
    if not notes:
        return plan
    note = "; ".join(notes)
    deferred = plan.deferred
    if deferred is not None:
        deferred = replace(deferred, reason=f"{deferred.reason}; {note}")
    return replace(plan, reason=f"{plan.reason}; {note}", deferred=deferred)


def _plan_backup(
    member: Member,
    files: Sequence[ArchiveFile],
    compression: Compression,
    *,
    force_full: bool,
    cadence: FullCadence | None,
    now: float,
    encrypted: bool,
    raw_send: str,
    age_raw_sends: bool,
) -> BackupPlan:
    """Nothing, an incremental from the newest archived snapshot (or its bookmark), or a full.

    A full the cadence asks for carries the incremental in `deferred`, so one
    run's plans can be held to a nightly quota (`apply_full_quota`). `raw_send`
    is the setting source.raw_send: "auto" (raw where natively encrypted) or "never".
    `encrypted` (like `compression`) shapes only the new file's name: a plain
    file is as good a base as an encrypted one. A raw send is age-encrypted too
    only with `age_raw_sends`: it is already encrypted with the dataset's key.
    """
    newest = member.newest
    if newest is None:
        return BackupPlan(
            member.name, member.dataset, Action.NO_SNAPSHOTS, "dataset has no snapshots"
        )
    raw = sends_raw(member, raw_send)
    encrypted = encrypted and (age_raw_sends or not raw)
    chains = restore_chains(files)
    existing = _Existing({f.filename: f for f in files}, files, chains)
    newest_chain = archived_chain(newest, files, chains)
    if newest_chain and not force_full:
        standing = cadence.status(newest_chain, now) if cadence is not None else None
        return BackupPlan(
            member.name,
            member.dataset,
            Action.UP_TO_DATE,
            f"{newest.name} is already in the archive" + (f"; {standing.when}" if standing else ""),
            snapshot=newest,
            upload_base=base_key(newest_chain[-1]),
            full_due=standing,
        )
    # Only a chain of the kind sent now (raw or plain) can be continued.
    kind = _of_kind(chains, raw)
    # (base, what `zfs send` starts from); a snapshot beats a bookmark of the same point.
    candidates: list[tuple[Snapshot, Snapshot | Bookmark]] = [
        (s, s)
        for s in archived_snapshots(member.snapshots, files, kind)
        if s.createtxg < newest.createtxg
    ]
    candidates += [
        (b, mark)
        for b, mark in _bookmark_bases(member, files, kind)
        if b.createtxg < newest.createtxg
    ]
    candidates.sort(key=lambda c: (c[0].createtxg, isinstance(c[1], Snapshot)))
    due = None
    if candidates and not force_full and cadence is not None:
        base_chain = archived_chain(candidates[-1][0], files, kind)
        due = cadence.status(base_chain, now) if base_chain else None
    incremental = None
    if candidates and not force_full:
        base, origin = candidates[-1]
        name = BackupName(
            member.dataset_part, newest.name, compression, base=base.name, encrypted=encrypted
        )
        reason = f"newest archived snapshot is {base.name}"
        if isinstance(origin, Bookmark):
            reason += f" (sent from bookmark {origin.name}: snapshot is gone)"
        incremental = _checked(
            member, newest, name, existing, Action.INCREMENTAL, reason, raw, base, origin.full_name
        )
        if due is None or not due.due:
            if due is not None and incremental.sends:
                incremental = replace(
                    incremental, reason=f"{incremental.reason}; {due.when}", full_due=due
                )
            return incremental
    name = BackupName(member.dataset_part, newest.name, compression, encrypted=encrypted)
    if force_full and any(n.name == name for n in files):
        return BackupPlan(
            member.name,
            member.dataset,
            Action.UP_TO_DATE,
            f"a full backup of {newest.name} exists",
            snapshot=newest,
        )
    if force_full:
        reason = "forced full backup"
    elif due is not None:
        reason = f"full cadence: {due.why}"
    elif archived_snapshots(member.snapshots, files, _of_kind(chains, not raw)):
        reason = _kind_changed(member, raw)
    else:
        reason = _no_base(member, newest, files, raw)
    full = replace(
        _checked(member, newest, name, existing, Action.FULL, reason, raw), forced=force_full
    )
    if due is not None and incremental is not None and incremental.sends and full.sends:
        full = replace(full, full_due=due, deferred=incremental)
    return full


def prefer_unfinished(
    plan: BackupPlan,
    member: Member,
    unfinished: Sequence[BackupName],
    replan: Callable[[Member], BackupPlan],
) -> BackupPlan:
    """The plan for an older snapshot whose upload was cut, where one can be resumed.

    A full that takes longer than a night (or whose link drops) would otherwise
    start again from byte 0 the next night for the newer snapshot, and never
    finish (zfs_uploader#77). So when a cut upload with checkpoints (`unfinished`)
    has the same base as tonight's plan and its snapshot still exists, tonight
    finishes that one (`replan` plans the member as it was then); the newest
    snapshot follows in the next run, incrementally. A forced full is never swapped.
    """
    if not plan.sends or plan.forced or plan.name is None or plan.snapshot is None:
        return plan
    by_name = {s.name: s for s in member.snapshots}
    newest_first = sorted(
        (n for n in unfinished if n.snapshot in by_name),
        key=lambda n: by_name[n.snapshot].createtxg,
        reverse=True,
    )
    for name in newest_first:
        snapshot = by_name[name.snapshot]
        if name.base != plan.name.base or snapshot.createtxg >= plan.snapshot.createtxg:
            continue
        then = replace(
            member,
            snapshots=tuple(s for s in member.snapshots if s.createtxg <= snapshot.createtxg),
        )
        earlier = replan(then)
        if earlier.sends and earlier.name == name:
            return replace(
                earlier,
                reason=f"{earlier.reason}; resuming its upload that was cut "
                f"({plan.snapshot.name}, the newest, follows in the next run)",
            )
    return plan


@dataclass(frozen=True)
class _Existing:
    """The member's files by name, and their restore chains: what a taken name is to them."""

    by_name: dict[str, ArchiveFile]
    files: Sequence[ArchiveFile]
    chains: dict[str, list[ArchiveFile]]


def conflict_advice(
    taken: ArchiveFile,
    newest: Snapshot,
    files: Sequence[ArchiveFile],
    chains: dict[str, list[ArchiveFile]],
) -> str:
    """Why the planned file name is taken, and a way on that keeps every restore point.

    Moving the file aside is safe only when no restore chain runs through it. When
    one does, it holds an older snapshot of the same name (the name was reused on
    the NAS: another GUID), and moving it would lose that restore point and every
    later one built on it; then a free file name is the way on: rename the new
    snapshot on the NAS, or let the next snapshot (which carries this one's data
    in its incremental) take the night.
    """
    head = f"{taken.filename} exists but is not a restorable copy of {newest.full_name}"
    wait = (
        f"or wait for the next snapshot: its file name is free, and its stream carries "
        f"{newest.name}'s data"
    )
    if taken.filename not in chains:
        why = missing_link(taken, files)
        return (
            f"{head} (it is in no restore chain: {why}); no restore point uses it, so move "
            f"only {taken.filename} out of the member directory (keep it until a restore of "
            f"the newest point is proven) and the next run sends {newest.name}, {wait}"
        )
    later = sum(1 for c in chains.values() if taken in c[:-1])
    guid = f" with GUID {taken.snapshot_guid}" if taken.snapshot_guid is not None else ""
    return (
        f"{head} (GUID {newest.guid}): it restores an earlier {taken.name.snapshot}{guid}, "
        "a snapshot name reused on the NAS; do not move or delete it: that would lose its "
        f"restore point{f' and {later} later one(s) built on it' if later else ''}. Rename the "
        f"new snapshot on the NAS (zfs rename {newest.full_name} {newest.full_name}-new), {wait}"
    )


def _no_base(member: Member, newest: Snapshot, files: Sequence[ArchiveFile], raw: bool) -> str:
    """Why a full: nothing in the archive, or its snapshots are gone from the NAS.

    The second is the common one (the NAS's retention destroyed the base, with no
    hold or bookmark left on it), and "not in the archive" would send the admin
    looking for a lost archive that is in fact intact.
    """
    points = [p for p in restore_points(files) if p.chain[-1].raw == raw]
    if not points:
        return "no snapshot of it is in the archive"
    last = points[-1]
    reused = [s for s in member.snapshots if s.name == last.snapshot]
    where = f"{member.dataset}@{last.snapshot}"
    gone = (
        f"{where} on the NAS is another snapshot (GUID {reused[0].guid}, not {last.guid})"
        if reused
        else f"{where} was destroyed on the NAS"
    )
    return (
        f"the archive's newest snapshot {last.snapshot} no longer exists on the NAS ({gone}, "
        "and no bookmark of it is left), nor does any older archived one, so nothing can be "
        f"sent incrementally: a full of {newest.name} starts a new chain; the archive's "
        "restore points stay restorable. To keep the next base, leave protect_base on (a "
        "hold or bookmark of each uploaded snapshot) or keep the NAS's snapshot retention "
        "from destroying it"
    )


def _kind_changed(member: Member, raw: bool) -> str:
    """Why a full starts a new chain although the archive holds a chain of the other kind."""
    if raw:
        return (
            f"{member.dataset} is natively encrypted ({member.encryption}) and is now sent raw; "
            "the archive's chain is plain, so a raw chain starts with a full"
        )
    why = "source.raw_send is never" if member.natively_encrypted else "it is not encrypted"
    return f"the archive's chain is raw and {why}, so a plain chain starts with a full"


def _checked(
    member: Member,
    newest: Snapshot,
    name: BackupName,
    existing: _Existing,
    action: Action,
    reason: str,
    raw: bool,
    base: Snapshot | None = None,
    send_from: str | None = None,
) -> BackupPlan:
    """The sending plan, or a conflict when its file name is taken (never overwrite)."""
    taken = existing.by_name.get(name.filename)
    if taken is not None:
        return BackupPlan(
            member.name,
            member.dataset,
            Action.CONFLICT,
            conflict_advice(taken, newest, existing.files, existing.chains),
            snapshot=newest,
            base=base,
            name=name,
            raw=raw,
        )
    if raw:
        reason += "; sent raw (zfs send -w), encrypted with the dataset's own key"
    return BackupPlan(
        member.name,
        member.dataset,
        action,
        reason,
        snapshot=newest,
        base=base,
        name=name,
        upload_base=str(base.guid) if base else "full",
        send_from=send_from,
        raw=raw,
    )


def superseded(plan: BackupPlan, files: Sequence[ArchiveFile]) -> str | None:
    """Why a plan must not run any more because the archive changed since it was made.

    A run that waited for another run's lock reads the member's directory again:
    the other run may have stored the same snapshot, or removed the base.
    """
    if plan.snapshot is None or plan.name is None:
        return None
    if any(f.filename == plan.name.filename for f in files):
        return f"{plan.name.filename} was stored by another run meanwhile"
    chains = restore_chains(files)
    if not plan.forced and archived_chain(plan.snapshot, files, chains):
        return f"{plan.snapshot.name} was stored by another run meanwhile"
    if plan.base is not None and not archived_chain(plan.base, files, _of_kind(chains, plan.raw)):
        return f"the base {plan.base.name} is no longer restorable from the archive"
    return None


def apply_full_quota(plans: Sequence[BackupPlan], quota: int) -> list[BackupPlan]:
    """One run's plans with at most `quota` new chains: the cadence fulls beyond it wait.

    Fulls the cadence asks for (a plan with `deferred`) are ranked most overdue
    first (in whole nights), ties by member name; the first ones keep their full, the others send
    their incremental instead and come back the next night, more overdue.
    Fulls that cannot wait (forced, no base in the archive, broken chain) are
    never deferred, and they take the night's slots first. Plans keep their order.
    """
    urgent = sum(1 for p in plans if p.action is Action.FULL and p.deferred is None)
    cadence = [p for p in plans if p.action is Action.FULL and p.deferred is not None]
    cadence.sort(key=lambda p: (-p.full_due.rank if p.full_due else 0, p.member))
    slots = max(0, quota - urgent)
    kept = {id(p): rank for rank, p in enumerate(cadence[:slots], 1)}
    result = []
    for p in plans:
        if p.deferred is None or p.action is not Action.FULL:
            result.append(p)
        elif id(p) in kept:
            why = p.full_due.why if p.full_due else p.reason
            tonight = f"{ordinal(kept[id(p)])} of {len(kept)} tonight"
            result.append(replace(p, reason=f"full due now ({tonight}): {why}"))
        else:
            taken = f", {urgent} by fulls that cannot wait" if urgent else ""
            result.append(
                replace(
                    p.deferred,
                    reason=f"full due, deferred: quota of {quota} reached tonight{taken}; "
                    f"{p.deferred.reason}",
                    full_due=p.full_due,
                    stale_marks=p.stale_marks,
                )
            )
    return result
