"""The full cadence: the age rule, the nightly quota, and a simulated migration month."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import pytest

from tests.support.archive_files import at, member, new_file, seed_file
from zfs_offsite.archive.model import ArchiveFile, Sidecar
from zfs_offsite.archive.names import Compression
from zfs_offsite.errors import ConfigError
from zfs_offsite.plan.backup import Action, BackupPlan, apply_full_quota, plan_backup
from zfs_offsite.plan.cadence import DAY, FullCadence, chain_age, full_quota, nightly_quota
from zfs_offsite.settings import load_settings
from zfs_offsite.zfs.members import Member
from zfs_offsite.zfs.model import Snapshot

NOW = 2_000_000_000.0  # 2033: far from the seed era
YEARS_AGO = NOW - 7.3 * 365 * DAY


def iso(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).isoformat()


def stamped(file: ArchiveFile, started: float) -> ArchiveFile:
    """A file this tool wrote: its upload started at `started` and took ten minutes."""
    assert file.sidecar is not None
    sidecar = dataclasses.replace(file.sidecar, started=iso(started), finished=iso(started + 600))
    return dataclasses.replace(file, sidecar=sidecar, mtime=started + 600)


def seed_archive() -> list[ArchiveFile]:
    """What the seed script left: a full and an incremental, file dates years back."""
    files = [seed_file("elabfs-a@s1.gz"), seed_file("elabfs-a@s1.to.elabfs-a@s2.gz")]
    return [dataclasses.replace(f, mtime=YEARS_AGO) for f in files]


MONTHLY = FullCadence(after_days=30)


def test_seed_chain_is_adopted_now_whatever_its_file_dates() -> None:
    age = chain_age(seed_archive(), NOW)
    assert (age.adopted, age.days, age.incrementals, age.since) == (True, 0.0, 0, NOW)
    plan = plan_backup(
        member("s1", "s2", "s3"), seed_archive(), Compression.GZIP, cadence=MONTHLY, now=NOW
    )
    assert plan.action is Action.INCREMENTAL and plan.deferred is None
    assert plan.reason == (
        "newest archived snapshot is s2; full due in 30 d: "
        "the chain has no file of this tool yet, its age counts from now"
    )


def test_adopted_chain_counts_from_the_tools_first_file() -> None:
    m = member("s1", "s2", "s3", "s4")
    s = m.snapshots
    first = stamped(new_file(s[2], s[1]), NOW - 12 * DAY)
    second = stamped(new_file(s[3], s[2]), NOW - DAY)
    age = chain_age([*seed_archive(), first, second], NOW)
    assert not age.adopted and age.incrementals == 2 and age.days == pytest.approx(12)

    m5 = member("s1", "s2", "s3", "s4", "s5")
    plan = plan_backup(
        m5, [*seed_archive(), first, second], Compression.GZIP, cadence=MONTHLY, now=NOW
    )
    assert plan.action is Action.INCREMENTAL and plan.reason.endswith("; full due in 18 d")

    month_old = stamped(new_file(s[2], s[1]), NOW - 30 * DAY)
    plan = plan_backup(
        m5, [*seed_archive(), month_old, second], Compression.GZIP, cadence=MONTHLY, now=NOW
    )
    assert plan.action is Action.FULL and plan.base is None
    assert plan.reason == (
        "full cadence: the chain is 30.0 days old, counted from this tool's first file in it "
        "(limit 30)"
    )
    assert plan.deferred is not None and plan.deferred.action is Action.INCREMENTAL
    assert plan.deferred.filename == "elabfs-a@s4.to.elabfs-a@s5.gz"


def test_a_chain_the_tool_started_counts_from_its_full() -> None:
    m = member("s1", "s2", "s3")
    s = m.snapshots
    files = [stamped(new_file(s[0]), NOW - 31 * DAY), stamped(new_file(s[1], s[0]), NOW - DAY)]
    age = chain_age(files, NOW)
    assert age.tool_full and age.incrementals == 1 and age.days == pytest.approx(31)
    plan = plan_backup(m, files, Compression.ZSTD, cadence=MONTHLY, now=NOW)
    assert plan.reason == "full cadence: the chain is 31.0 days old (limit 30)"


@pytest.mark.parametrize(
    ("days", "due", "left"),
    [(29.8, True, ""), (29.7, False, "1 d"), (30.5, True, ""), (17.2, False, "13 d")],
)
def test_a_run_a_little_earlier_in_the_evening_still_counts_the_night(
    days: float, due: bool, left: str
) -> None:
    s = member("s1").snapshots
    status = MONTHLY.status([stamped(new_file(s[0]), NOW - days * DAY)], NOW)
    assert status is not None and (status.due, status.left) == (due, left)


def test_incremental_limit_counts_only_what_the_tool_added() -> None:
    cadence = FullCadence(after_incrementals=3)
    m = member(*(f"s{i}" for i in range(1, 60)))
    s = m.snapshots
    seed = [seed_file("elabfs-a@s1.gz")] + [
        seed_file(f"elabfs-a@s{i}.to.elabfs-a@s{i + 1}.gz") for i in range(1, 50)
    ]
    plan = plan_backup(m, seed, Compression.GZIP, cadence=cadence, now=NOW)
    assert plan.action is Action.INCREMENTAL and "full due in 3 runs" in plan.reason
    ours = [stamped(new_file(s[i + 1], s[i]), NOW - (52 - i) * DAY) for i in range(49, 52)]
    plan = plan_backup(m, seed + ours, Compression.GZIP, cadence=cadence, now=NOW)
    assert plan.action is Action.FULL
    assert plan.reason == "full cadence: 3 incrementals by this tool in an adopted chain (limit 3)"


def test_up_to_date_member_says_when_its_full_is_due() -> None:
    m = member("s1", "s2")
    s = m.snapshots
    files = [stamped(new_file(s[0]), NOW - 20 * DAY), stamped(new_file(s[1], s[0]), NOW - DAY)]
    plan = plan_backup(m, files, Compression.ZSTD, cadence=MONTHLY, now=NOW)
    assert plan.action is Action.UP_TO_DATE
    assert plan.reason == "s2 is already in the archive; full due in 10 d"


@pytest.mark.parametrize(
    ("members", "cadence", "cap", "quota"),
    [
        (6, FullCadence(after_days=30), None, 1),
        (6, FullCadence(after_days=3), None, 2),
        (7, FullCadence(after_days=3), None, 3),
        (6, FullCadence(after_incrementals=2, after_days=30), None, 3),
        (60, FullCadence(after_days=30), 5, 5),
        (4, FullCadence(), None, 4),
        (1, FullCadence(after_days=90), None, 1),
    ],
)
def test_nightly_quota(members: int, cadence: FullCadence, cap: int | None, quota: int) -> None:
    assert nightly_quota(members, cadence, cap) == quota


def test_quota_from_settings_and_the_example_config() -> None:
    example = Path(__file__).parents[3] / "examples" / "seed-deployment.toml"
    assert full_quota(load_settings(example).full, 6) == 1
    assert full_quota(load_settings(example).full, 31) == 2
    capped = load_settings(full={"after_days": 30, "max_per_night": 3})
    assert full_quota(capped.full, 6) == 3
    with pytest.raises(ConfigError, match=r"^setting full.max_per_night"):
        load_settings(full={"max_per_night": 0})


# --- apply_full_quota over hand-made plans -----------------------------------------------


def due_plan(name: str, days_old: float) -> BackupPlan:
    """A member whose tool-made chain is `days_old` (limit 30): a full with its deferral."""
    m = dataclasses.replace(member("s1", "s2", "s3"), name=name)
    s = m.snapshots
    files = [stamped(new_file(s[0]), NOW - days_old * DAY), stamped(new_file(s[1], s[0]), NOW)]
    plan = plan_backup(m, files, Compression.ZSTD, cadence=MONTHLY, now=NOW)
    return dataclasses.replace(plan, stale_marks=(f"{name}-mark",))


def fresh_plan(name: str, *, forced: bool = False) -> BackupPlan:
    m = dataclasses.replace(member("s1", "s2"), name=name)
    files = [new_file(m.snapshots[0])] if forced else []
    return plan_backup(m, files, Compression.ZSTD, force_full=forced, cadence=MONTHLY, now=NOW)


def summary(plans: list[BackupPlan]) -> list[tuple[str, str]]:
    return [(p.member, p.action.value) for p in plans]


def test_quota_serves_the_most_overdue_first_ties_by_name() -> None:
    # dora's upload started a minute before carl's: the same night, so the name decides.
    plans = [
        due_plan("dora", 31.001),
        due_plan("bob", 40),
        due_plan("carl", 31),
        due_plan("abe", 5),
    ]
    assert [p.action for p in plans] == [Action.FULL] * 3 + [Action.INCREMENTAL]
    result = apply_full_quota(plans, 2)
    assert summary(result) == [
        ("dora", "incremental"),
        ("bob", "full"),
        ("carl", "full"),
        ("abe", "incremental"),
    ]
    dora, bob, carl, abe = result
    assert bob.reason == "full due now (1st of 2 tonight): the chain is 40.0 days old (limit 30)"
    assert carl.reason.startswith("full due now (2nd of 2 tonight): the chain is 31.0 days")
    assert dora.reason == (
        "full due, deferred: quota of 2 reached tonight; newest archived snapshot is s2"
    )
    assert dora.filename == "elabfs-a@s2.to.elabfs-a@s3.zst" and dora.base is not None
    assert dora.stale_marks == ("dora-mark",) and dora.deferred is None
    assert abe == plans[3]
    assert apply_full_quota(result, 2) == result  # a second pass changes nothing


def test_fulls_that_cannot_wait_are_never_deferred_and_take_the_slots_first() -> None:
    plans = [due_plan("ann", 45), fresh_plan("new"), fresh_plan("forced", forced=True)]
    assert plans[1].reason == "no snapshot of it is in the archive"
    assert plans[2].reason == "forced full backup"
    result = apply_full_quota(plans, 2)
    assert summary(result) == [("ann", "incremental"), ("new", "full"), ("forced", "full")]
    assert result[0].reason.startswith(
        "full due, deferred: quota of 2 reached tonight, 2 by fulls that cannot wait; "
    )
    assert result[1:] == plans[1:]
    result = apply_full_quota(plans, 3)
    assert summary(result)[0] == ("ann", "full")
    assert result[0].reason.startswith("full due now (1st of 1 tonight)")


# --- a simulated migration: six members, nightly runs, files the plans "uploaded" -------------


def simulate(
    names: list[str], cadence: FullCadence, nights: int, quota: int
) -> list[list[BackupPlan]]:
    """Run plan_backup + the quota night after night over a seed archive; record each upload."""
    archive: dict[str, list[ArchiveFile]] = {}
    snapshots: dict[str, list[Snapshot]] = {}
    for i, name in enumerate(names):
        ds = f"Datenspeicher/elabfs-{name}"
        snapshots[name] = [Snapshot(ds, f"auto-{d}", 1000 * i + d, d, 0) for d in range(7)]
        seed = [f"elabfs-{name}@auto-0.gz"] + [
            f"elabfs-{name}@auto-{d}.to.elabfs-{name}@auto-{d + 1}.gz" for d in range(6)
        ]
        archive[name] = [
            dataclasses.replace(seed_file(f), mtime=YEARS_AGO + 86400 * k)
            for k, f in enumerate(seed)
        ]
    start = NOW + 2.5 * 3600  # 02:30 every night
    history = []
    for night in range(nights):
        now = start + night * DAY
        plans = []
        for i, name in enumerate(names):
            ds = f"Datenspeicher/elabfs-{name}"
            day = 7 + night
            snapshots[name].append(Snapshot(ds, f"auto-{day}", 1000 * i + day, day, 0))
            snapshots[name] = snapshots[name][-7:]  # the NAS keeps a week
            m = Member(name, ds, f"elabfs-{name}", tuple(snapshots[name]))
            plans.append(plan_backup(m, archive[name], Compression.GZIP, cadence=cadence, now=now))
        plans = apply_full_quota(plans, quota)
        for i, p in enumerate(plans):
            assert p.sends and p.name is not None and p.snapshot is not None, p.reason
            started = now + 60 + 1200 * i  # two streams at a time: some start later
            sidecar = Sidecar(
                dataset=p.dataset,
                snapshot=p.snapshot.name,
                snapshot_guid=p.snapshot.guid,
                compression="gzip",
                sha256="0" * 64,
                raw_bytes=1,
                stored_bytes=1,
                started=iso(started),
                finished=iso(started + 3 * 3600 if p.action is Action.FULL else started + 300),
                tool_version="sim",
                base=p.base.name if p.base else None,
                base_guid=p.base.guid if p.base else None,
            )
            archive[p.member].append(ArchiveFile(p.name.filename, p.name, 1, started, sidecar))
        history.append(plans)
    return history


@pytest.mark.parametrize(("after_days", "nights"), [(30, 95), (3, 30)])
def test_simulated_nights_stagger_the_fulls(after_days: float, nights: int) -> None:
    names = ["alice", "bob", "carol", "dave", "erin", "frank"]
    cadence = FullCadence(after_days=after_days)
    quota = nightly_quota(len(names), cadence)
    assert quota == math.ceil(len(names) / after_days)
    history = simulate(names, cadence, nights, quota)

    assert [p.action for p in history[0]] == [Action.INCREMENTAL] * len(names)
    fulls_per_night = [sum(p.action is Action.FULL for p in night) for night in history]
    assert max(fulls_per_night) <= quota
    # Each member: a new chain at the latest after_days + members/quota nights after the
    # chain began (adoption on night 0 counts as a beginning).
    bound = after_days + math.ceil(len(names) / quota)
    full_nights = {n: [0] for n in names}
    for night, plans in enumerate(history):
        for p in plans:
            if p.action is Action.FULL:
                full_nights[p.member].append(night)
    for name, starts in full_nights.items():
        assert len(starts) >= 3, (name, starts)  # at least two fulls per member
        gaps = [b - a for a, b in pairwise(starts)]
        assert max(gaps) <= bound, (name, gaps)
        assert nights - 1 - starts[-1] < bound
    # The plans said what happened: a full by rank, a deferral by the quota.
    reasons = Counter(p.reason.split(";")[0] for night in history for p in night)
    assert any(r.startswith("full due, deferred: quota of") for r in reasons)
    assert any(r.startswith(f"full due now (1st of {quota} tonight)") for r in reasons)


def test_full_cadence_starts_a_new_chain() -> None:
    m = member("s1", "s2", "s3", "s4")
    s = m.snapshots
    files = [at(new_file(s[0]), 1000.0), at(new_file(s[1], s[0]), 2000.0)]
    files.append(at(new_file(s[2], s[1]), 3000.0))
    by_count = plan_backup(
        m, files, Compression.ZSTD, cadence=FullCadence(after_incrementals=2), now=4000.0
    )
    assert by_count.action is Action.FULL and "2 incrementals" in by_count.reason
    by_age = plan_backup(m, files, Compression.ZSTD, cadence=FullCadence(after_days=1), now=1e6)
    assert by_age.action is Action.FULL and "days old" in by_age.reason
    young = plan_backup(m, files, Compression.ZSTD, cadence=FullCadence(after_days=1), now=4000.0)
    assert young.action is Action.INCREMENTAL
