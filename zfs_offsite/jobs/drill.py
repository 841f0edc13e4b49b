"""Restore drill: prove members restorable by receiving their newest archived snapshot.

Members take turns: those never drilled, then those drilled longest ago, so
with `cycle_runs` runs every member has been drilled. Each drill receives into
`<scratch>/<member>` (a nested member's `~` written `::`, see
`zfs.members.scratch_component`), compares the received snapshot's GUID with the source's
(or, if the NAS has pruned it, with the GUID the sidecar recorded), and destroys
the scratch dataset again. The drill destroys only a dataset that carries its
own ownership mark (`zfs/ownership.py`, set when its receive created it):
anything else at `<scratch>/<member>`, an admin's restore for one, fails that
member's drill with one line and stays as it is. The record of successful
drills lives on the backup server, next to what it proves: `drill_member`
writes it itself, so a drill run from a task, a script or a test leaves the
same proof and moves the rotation on alike.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from zfs_offsite.errors import IntegrityError, PermanentError
from zfs_offsite.jobs.restore import plan_restore, receive_chain
from zfs_offsite.keys.identities import Identity, configured_identities
from zfs_offsite.remote.store import Store, read_small_file, write_small_file
from zfs_offsite.settings import Settings
from zfs_offsite.stream.readback import check_can_decrypt
from zfs_offsite.zfs.commands import create_argv, destroy_scratch_argv
from zfs_offsite.zfs.destination import dataset_exists
from zfs_offsite.zfs.members import Member, scratch_component
from zfs_offsite.zfs.ownership import DRILL, DRILL_PARENT, Mark, is_mine, new_run_id
from zfs_offsite.zfs.runner import CommandFailed, Runner

log = logging.getLogger(__name__)

DRILL_RECORD = ".zfs-offsite-drills.json"


@dataclass(frozen=True)
class DrillRecord:
    """The last successful drill of one member."""

    when: str
    snapshot: str
    guid: int | None
    guid_checked_against: str  # "source", "sidecar" or "nothing (seed-era chain)"
    files: int
    raw_bytes: int
    seconds: float
    mb_per_second: float


def choose_members(
    names: Sequence[str], last: dict[str, DrillRecord], cycle_runs: int
) -> list[str]:
    """This run's members: never drilled first, then the longest ago; enough to cover a cycle."""
    per_run = max(1, math.ceil(len(names) / cycle_runs))
    order = sorted(names, key=lambda n: (n in last, last[n].when if n in last else "", n))
    return order[:per_run]


def read_records(store: Store) -> dict[str, DrillRecord]:
    if store.stat(DRILL_RECORD) is None:
        return {}
    try:
        raw = json.loads(read_small_file(store, DRILL_RECORD))
        return {name: DrillRecord(**value) for name, value in raw.items()}
    except (ValueError, TypeError) as exc:
        log.warning("%s is unreadable (%s): starting the rotation afresh", DRILL_RECORD, exc)
        return {}


def write_record(store: Store, member: str, record: DrillRecord) -> None:
    """Add one member's record (read-modify-write; drills of one target do not overlap)."""
    records = read_records(store)
    records[member] = record
    data = {name: asdict(r) for name, r in sorted(records.items())}
    write_small_file(store, DRILL_RECORD, (json.dumps(data, indent=2) + "\n").encode())


def not_ours(dataset: str) -> str:
    """The one line for a dataset at the drill's scratch path that the drill did not create."""
    return (
        f"{dataset} exists and was not created by the zfs-offsite drill (it has no "
        f"zfs-offsite drill mark): move it (zfs rename), or set drill.scratch_dataset to a "
        "dataset of its own; nothing was destroyed"
    )


def destroy_scratch(runner: Runner, dataset: str, attempts: int = 10) -> None:
    """Destroy a scratch dataset the drill created; a fresh mount can be busy, so retry.

    Refused (PermanentError, nothing destroyed) unless the dataset carries the
    drill's own mark: a name at the scratch path proves nothing.
    """
    if dataset_exists(runner, dataset) and not is_mine(runner, dataset, DRILL):
        raise PermanentError(not_ours(dataset))
    for attempt in range(attempts):
        if not dataset_exists(runner, dataset):
            return
        result = runner.run(destroy_scratch_argv(dataset), check=False)
        if result.returncode == 0:
            return
        if attempt == attempts - 1:
            raise CommandFailed(result)
        time.sleep(0.5 * (attempt + 1))


def drill_member(
    settings: Settings,
    runner: Runner,
    store: Store,
    member: Member,
    *,
    run: str | None = None,
) -> DrillRecord:
    """Drill one member into `settings.scratch_dataset` and record the proof on the server.

    An encrypted chain needs `encryption.identity_file`; without it (or with the
    wrong one) the drill fails before the scratch dataset is touched. `run` names
    the run in the scratch dataset's ownership mark (a flow run id; default:
    generated). Only a drill that passed is recorded (`.zfs-offsite-drills.json`).
    """
    identities = configured_identities(settings.encryption)
    record = _drill(runner, store, member, settings.scratch_dataset, identities, run)
    write_record(store, member.name, record)
    return record


def _drill(
    runner: Runner,
    store: Store,
    member: Member,
    scratch: str,
    identities: Sequence[Identity] | None,
    run: str | None,
) -> DrillRecord:
    """Receive the newest archived snapshot into scratch, check its GUID, destroy it again."""
    point = plan_restore(store, member.name, None)
    destination = f"{scratch}/{scratch_component(member.name)}"
    check_can_decrypt(store, member.name, point.chain, identities)
    run = run or new_run_id()
    if not dataset_exists(runner, scratch):
        runner.run(create_argv(scratch, Mark(DRILL_PARENT, run).value))
    destroy_scratch(runner, destination)  # an interrupted drill's, if marked; else refused
    try:
        result = receive_chain(
            runner,
            store,
            member.name,
            point,
            destination,
            identities=identities,
            mark=Mark(DRILL, run),
        )
    finally:
        try:
            destroy_scratch(runner, destination)
        except PermanentError as exc:  # unmarked: never ours to destroy; the next drill says so
            log.warning("drill of %s: %s", member.name, exc)
    source = next((s for s in member.snapshots if s.name == point.snapshot), None)
    if source is not None:
        expected, against = source.guid, "source"
    elif point.guid is not None:
        expected, against = point.guid, "sidecar"
    else:
        expected, against = None, "nothing (seed-era chain)"
    if expected is not None and result.guid != expected:
        raise IntegrityError(
            f"drill of {member.name}: received {point.snapshot} has GUID {result.guid}, "
            f"the {against} says {expected}"
        )
    return DrillRecord(
        when=datetime.now(UTC).isoformat(timespec="seconds"),
        snapshot=point.snapshot,
        guid=result.guid,
        guid_checked_against=against,
        files=len(result.files),
        raw_bytes=result.raw_bytes,
        seconds=round(result.seconds, 3),
        mb_per_second=round(result.mb_per_second, 1),
    )
