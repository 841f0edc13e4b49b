"""The restore destination: made ready before a chain is received, put back when a link fails.

`zfs receive` of an `-I` file commits each snapshot the file carries as soon as
it has read that snapshot's part, so a file that fails late leaves some of its
snapshots behind, even though the last 1 MiB is held back. Everything here
looks at what the destination holds (its snapshots by GUID, createtxg and
creation time) instead of assuming it, and destroys only what it can prove
was received for the link in hand:

- a failed link: the snapshots that were not there before this link started,
  all newer than the previous link's snapshot, are rolled back to that snapshot;
- `--resume`: snapshots after the last complete link whose creation times lie
  between that link's snapshot and the next file's snapshot (only an unfinished
  receive of that file puts them there) are rolled back; anything else is
  named and left alone;
- `--force`: the destination dataset and its own snapshots, nothing outside
  it, and not at all when it has child datasets, clones or holds; nor, without
  `--destroy-live-dataset` too, when it is a configured member (or inside one)
  or holds a snapshot whose GUID the archive does not have (or no snapshot):
  that is live data, not an earlier restore;
- a snapshot inside an `-I` file: the later snapshots that file brought, by
  `zfs rollback -r`, only in a destination this restore created or marked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from zfs_offsite.archive.model import ArchiveFile
from zfs_offsite.errors import ConfigError, PermanentError
from zfs_offsite.zfs.commands import (
    MARK,
    create_parents_argv,
    destroy_argv,
    error_text,
    exists_argv,
    list_datasets,
    origins_argv,
    parse_origins,
    rollback_argv,
    set_mark_argv,
)
from zfs_offsite.zfs.model import Snapshot
from zfs_offsite.zfs.ownership import Mark
from zfs_offsite.zfs.runner import Runner

if TYPE_CHECKING:
    # Type-only: the chain is read here, never built. plan/ reads zfs/model, so an
    # import of plan/ that runs from zfs/ would tie the two folders in a loop.
    from zfs_offsite.plan.chains import RestorePoint

log = logging.getLogger(__name__)

RETRIES = 6  # about 7 s: zfs-fuse finishes a killed receive in the background
NAMES_SHOWN = 8  # in "holds …" summaries; snapshots to act on are always listed in full


def dataset_exists(runner: Runner, dataset: str) -> bool:
    return runner.run(exists_argv(dataset), check=False).returncode == 0


def destination_snapshots(runner: Runner, dataset: str) -> tuple[Snapshot, ...] | None:
    """The dataset's snapshots, oldest first; None if the dataset does not exist."""
    if not dataset_exists(runner, dataset):
        return None
    listed = list_datasets(runner, dataset).get(dataset)
    return listed.snapshots if listed else ()


def snapshot_names(snapshots: Sequence[Snapshot], limit: int | None = None) -> str:
    names = [s.name for s in snapshots]
    if limit is not None and len(names) > limit:
        half = limit // 2
        names = [*names[:half], f"… {len(names) - 2 * half} more …", *names[-half:]]
    return ", ".join(names)


def describe(dataset: str, snapshots: Sequence[Snapshot] | None, *, full: bool = False) -> str:
    """`<dataset> holds 2 snapshots: a, b` (or that it holds none, or does not exist)."""
    if snapshots is None:
        return f"{dataset} does not exist"
    if not snapshots:
        return f"{dataset} holds no snapshot"
    count = f"{len(snapshots)} snapshot{'s' if len(snapshots) > 1 else ''}"
    names = snapshot_names(snapshots, None if full else NAMES_SHOWN)
    return f"{dataset} holds {count}: {names}"


def _find(snapshots: Sequence[Snapshot], file: ArchiveFile) -> Snapshot | None:
    """The snapshot that `file` restores, by name, and by GUID where the sidecar records one."""
    for snap in snapshots:
        if snap.name == file.name.snapshot and file.snapshot_guid in (None, snap.guid):
            return snap
    return None


def complete_links(snapshots: Sequence[Snapshot], point: RestorePoint) -> int:
    """How many leading links of the chain are present (their snapshots, matched by GUID)."""
    count = 0
    for file in point.chain:
        if _find(snapshots, file) is None:
            break
        count += 1
    return count


def run_retried(runner: Runner, argv: list[str]) -> str | None:
    """Run a zfs command, retried a few times; None on success, else what zfs said.

    Right after a killed receive, zfs-fuse may still hold its temporary clone of
    the newest snapshot ("busy", even "dataset already exists") for a moment,
    and a dataset mounted a moment ago can be busy too.
    """
    message = ""
    for attempt in range(RETRIES):
        if attempt:
            time.sleep(0.5 * attempt)
        result = runner.run(argv, check=False)
        if result.returncode == 0:
            return None
        message = error_text(result.stderr)
    return message


def rollback(runner: Runner, snapshot: str) -> str | None:
    """`zfs rollback -r snapshot` (retried); None on success, else what zfs said."""
    return run_retried(runner, rollback_argv(snapshot))


def ensure_parent(runner: Runner, destination: str) -> str | None:
    """Create the destination's missing parent (never the destination); its name, if created.

    `zfs receive` cannot create ancestors. A pool cannot be created this way:
    a destination directly below a missing pool is left to zfs's own error.
    """
    parent = destination.rpartition("/")[0]
    if "/" not in parent or dataset_exists(runner, parent):
        return None
    result = runner.run(create_parents_argv(parent), check=False)
    if result.returncode != 0:
        raise PermanentError(
            f"cannot create {parent}, the parent of the destination {destination}: "
            f"{error_text(result.stderr)}"
        )
    log.info("created %s (zfs create -p) to receive %s into", parent, destination)
    return parent


DESTROY_LIVE = "--destroy-live-dataset"


class LiveDatasetError(ConfigError):
    """`--force` named a dataset that holds live data: refused unless DESTROY_LIVE says so."""


class ForceRefused(ConfigError, PermanentError):
    """`--force` named a dataset it cannot replace as it is (children, holds, clones, a pool's
    root): refused before anything is destroyed, so bad input (exit 2) like LiveDatasetError."""


def live_reason(
    destination: str,
    snapshots: Sequence[Snapshot],
    member: str,
    archived: set[int],
    members: Sequence[str],
) -> str | None:
    """Why `destination` is live data rather than an earlier restore, or None.

    A configured member, or a dataset inside one, is live by definition. Any
    other dataset is an earlier restore only if it holds snapshots and every
    one of them has a GUID from the member's archive (a restore keeps GUIDs).
    """
    for dataset in members:
        if destination == dataset or destination.startswith(dataset + "/"):
            what = "a configured member" if destination == dataset else f"inside member {dataset}"
            return f"{destination} is {what}"
    if not snapshots:
        return f"{destination} holds no snapshot from {member}'s archive"
    foreign = [s for s in snapshots if s.guid not in archived]
    if foreign:
        names = snapshot_names(foreign, NAMES_SHOWN)
        return f"{destination} holds snapshots that are not in {member}'s archive ({names})"
    return None


def check_replaceable(
    runner: Runner,
    destination: str,
    member: str,
    archived: set[int],
    members: Sequence[str],
    *,
    destroy_live: bool,
) -> None:
    """`--force`: refuse (LiveDatasetError, one line) to replace live data without DESTROY_LIVE."""
    reason = live_reason(
        destination, destination_snapshots(runner, destination) or (), member, archived, members
    )
    if reason is None:
        return
    if destroy_live:
        log.warning("%s: %s, and %s says it may be destroyed", destination, reason, DESTROY_LIVE)
        return
    raise LiveDatasetError(
        f"--force will not replace {destination}: {reason}; add {DESTROY_LIVE} if it may be "
        "destroyed, or restore into a new dataset"
    )


def set_mark(runner: Runner, dataset: str, mark: Mark) -> None:
    """`zfs set` the ownership mark on a dataset the restore just created (no `receive -o`)."""
    error = run_retried(runner, set_mark_argv(dataset, mark.value))
    if error is not None:
        raise PermanentError(
            f"cannot mark {dataset} as created by zfs-offsite ({error}); set it yourself: "
            f"zfs set {MARK}='{mark.value}' {dataset}"
        )


def roll_back_inside(
    runner: Runner, destination: str, point: RestorePoint, *, owned: bool
) -> list[str]:
    """Roll a destination back from the `-I` file's target to the snapshot it carries.

    Only a destination this restore created (or marked) is rolled back; the
    snapshots destroyed are the later ones that file brought. Returns their names.
    """
    target = f"{destination}@{point.snapshot}"
    held = destination_snapshots(runner, destination) or ()
    inside = next((s for s in held if s.name == point.snapshot), None)
    if inside is None:
        raise PermanentError(
            f"{point.inside} was received but {target} is not there: {describe(destination, held)}"
        )
    later = [s.name for s in held if s.createtxg > inside.createtxg]
    if not owned:
        raise PermanentError(
            f"{destination} now holds {point.chain[-1].name.snapshot}; it was not created by "
            f"this restore, so it is not rolled back to {point.snapshot}: zfs rollback -r {target}"
        )
    error = rollback(runner, target)
    if error is not None:
        raise PermanentError(f"zfs rollback -r {target} failed: {error}")
    log.info(
        "%s: %s is inside %s: received it, then rolled back to it (zfs rollback -r), destroying %s",
        destination,
        point.snapshot,
        point.inside,
        ", ".join(later) or "nothing",
    )
    return later


def remove_for_force(runner: Runner, destination: str) -> list[str]:
    """`--force`: destroy the destination dataset and its snapshots; the restore takes its place.

    Only that dataset goes (each snapshot, then the dataset, never `-r`). A
    destination with child datasets, or with snapshots that are held or
    cloned, is refused before anything is destroyed. Returns the destroyed
    snapshots' names.
    """
    if "/" not in destination:
        raise ForceRefused(
            f"--force cannot replace {destination}, the root dataset of a pool: "
            "restore into a dataset below it"
        )
    listed = list_datasets(runner, destination)
    children = sorted(name for name in listed if name != destination)
    if children:
        raise ForceRefused(
            f"--force replaces {destination} only when it has no child datasets; it has "
            f"{', '.join(children)}: restore into a new dataset, or destroy them first"
        )
    snapshots = listed[destination].snapshots if destination in listed else ()
    held = [s for s in snapshots if s.userrefs]
    if held:
        raise ForceRefused(
            f"--force cannot replace {destination}: {held[0].full_name} has a hold "
            f"(zfs holds {held[0].full_name}): release it, or restore into a new dataset"
        )
    if snapshots:
        pool = destination.split("/", 1)[0]
        origins = parse_origins(runner.run(origins_argv(pool)).stdout)
        clones = sorted(c for c, o in origins.items() if o.partition("@")[0] == destination)
        if clones:
            raise ForceRefused(
                f"--force cannot replace {destination}: {clones[0]} is a clone of "
                f"{origins[clones[0]]}: destroy or promote it, or restore into a new dataset"
            )
    for name in [*(s.full_name for s in reversed(snapshots)), destination]:
        error = run_retried(runner, destroy_argv(name))
        if error is not None:
            now = describe(destination, destination_snapshots(runner, destination), full=True)
            raise PermanentError(f"--force: zfs destroy {name} failed: {error}; {now}")
    log.warning(
        "--force: destroyed %s and its %d snapshot(s)%s to restore into its place",
        destination,
        len(snapshots),
        f" ({snapshot_names(snapshots)})" if snapshots else "",
    )
    return [s.name for s in snapshots]


def prepare_resume(runner: Runner, destination: str, point: RestorePoint) -> int:
    """`--resume`: the number of links already present; leftovers of the next link rolled back.

    Snapshots after the last complete link are taken as leftovers of an
    unfinished receive of the next file only if each was created between that
    link's snapshot and the next file's snapshot (the sidecar records its time),
    is not the next file's snapshot under another GUID, and has no hold. Otherwise
    nothing is destroyed and the error names them.
    """
    held = destination_snapshots(runner, destination) or ()
    count = complete_links(held, point)
    if count == 0:
        raise PermanentError(
            f"destination {destination} holds no snapshot of this chain (first: "
            f"{point.chain[0].name.snapshot}): name a new dataset or pass --force"
        )
    if count == len(point.chain):
        return count
    base = _find(held, point.chain[count - 1])
    assert base is not None
    extra = [s for s in held if s.createtxg > base.createtxg]
    if not extra:
        return count
    upcoming = point.chain[count]
    until = upcoming.sidecar.snapshot_creation if upcoming.sidecar else None
    foreign = [
        s
        for s in extra
        if until is None
        or not base.creation <= s.creation <= until
        or s.name == upcoming.name.snapshot
        or s.userrefs
    ]
    if foreign:
        why = (
            "its sidecar records no snapshot time to tell them apart"
            if until is None
            else f"they are not snapshots that {upcoming.filename} carries"
        )
        raise PermanentError(
            f"--resume: {destination} holds {snapshot_names(foreign)} after {base.name}, the "
            f"last complete link, and {why}: destroy them yourself (zfs rollback -r "
            f"{base.full_name}) if they may go, or restore into a new dataset"
        )
    error = rollback(runner, base.full_name)
    if error is not None:
        raise PermanentError(
            f"--resume: zfs rollback -r {base.full_name} (to drop {snapshot_names(extra)}, left "
            f"by an unfinished receive of {upcoming.filename}) failed: {error}"
        )
    log.warning(
        "--resume: rolled %s back to %s, destroying %s: left by an unfinished receive of %s",
        destination,
        base.name,
        snapshot_names(extra),
        upcoming.filename,
    )
    return count


def recover_failed_link(
    runner: Runner,
    destination: str,
    point: RestorePoint,
    index: int,
    before: Sequence[Snapshot] | None,
    *,
    damaged: bool,
) -> str:
    """After link `index` failed: roll back what it committed; the clause that says the outcome.

    `before` is what the destination held when the link started; only snapshots
    that appeared since, all newer than the previous link's snapshot, are
    rolled back. Otherwise they stay and the clause lists every snapshot there.
    `damaged`: the file failed its checks (rather than zfs or the connection).
    """
    after = destination_snapshots(runner, destination)
    known = {s.guid for s in before or ()}
    new = [s for s in after or () if s.guid not in known]
    again = next_step(point, index, exists=after is not None, damaged=damaged)
    if not new:
        return f"nothing of this file was committed, {describe(destination, after)}; {again}"
    reason = why_no_rollback(after or (), new, point, index)
    if reason is None:
        base = point.chain[index - 1].name.snapshot
        error = rollback(runner, f"{destination}@{base}")
        now = destination_snapshots(runner, destination)
        left = [s for s in now or () if s.guid in {n.guid for n in new}]
        if error is None and not left:
            return (
                f"zfs receive had committed {snapshot_names(new)} from this file: rolled back "
                f"to {base} (zfs rollback -r), {describe(destination, now)}; {again}"
            )
        reason = f"zfs rollback -r {destination}@{base} failed: {error or 'snapshots remain'}"
        after = now
    return (
        f"zfs receive committed {snapshot_names(new)} from this file and they are still there "
        f"({reason}): {describe(destination, after, full=True)}; {again}"
    )


def why_no_rollback(
    after: Sequence[Snapshot], new: Sequence[Snapshot], point: RestorePoint, index: int
) -> str | None:
    """None if rolling back to the previous link's snapshot destroys exactly `new`."""
    if index == 0:
        return "the first link has no earlier snapshot to roll back to"
    base = _find(after, point.chain[index - 1])
    if base is None:
        return f"{point.chain[index - 1].name.snapshot} is not there with its recorded GUID"
    later = {s.guid for s in after if s.createtxg > base.createtxg}
    if later != {s.guid for s in new}:
        others = [s for s in after if s.guid in later - {n.guid for n in new}]
        return f"{snapshot_names(others)} after {base.name} were not received by this link"
    return None


def next_step(point: RestorePoint, index: int, *, exists: bool, damaged: bool) -> str:
    """What the operator does after link `index` failed: the flag the next run needs."""
    first = (
        f"replace {point.chain[index].filename} with a sound copy, then"
        if damaged
        else "once the cause is fixed,"
    )
    flag = " with --resume" if index else " with --force" if exists else ""
    return f"{first} restore {point.snapshot} again{flag}"
