"""Retention over generated archives: no kept restore point ever loses a link."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.archive_files import DS, sidecar
from zfs_offsite.archive.model import ArchiveFile
from zfs_offsite.archive.names import BackupName, Compression, parse_backup_name
from zfs_offsite.plan.chains import restore_points
from zfs_offsite.plan.retention import kept_points, plan_prune, point_time
from zfs_offsite.values.entries import StoreEntry
from zfs_offsite.values.policy import parse_policy

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
POLICIES = [
    "all 7d, daily 30d, weekly 12w, monthly 12m",
    "daily 3d",
    "all 1d",
    "weekly 8w, yearly 5y",
    "hourly 48h, monthly 24m",
]


def snap_name(t: datetime) -> str:
    return f"auto-{t:%Y%m%d.%H%M}-1w"


def make_file(t: datetime, guid: int, base: tuple[str, int] | None, seed_era: bool) -> ArchiveFile:
    snapshot = snap_name(t)
    if seed_era:
        name = BackupName("elabfs-a", snapshot, Compression.GZIP, base[0] if base else None)
        return ArchiveFile(name.filename, name, 100, t.timestamp() + 600)
    name = BackupName("elabfs-a", snapshot, Compression.ZSTD, base[0] if base else None)
    identity = sidecar(
        DS,
        snapshot,
        guid,
        base[0] if base else None,
        base[1] if base else None,
        int(t.timestamp()),
        stored_bytes=100,
        started=t.isoformat(),
        finished=(t + timedelta(minutes=10)).isoformat(),
    )
    return ArchiveFile(name.filename, name, 100, t.timestamp() + 600, identity)


def generated_archive(rng: random.Random) -> list[ArchiveFile]:
    """Nightly backups over many days: fulls now and then, skipped nights, a seed-era start."""
    days = rng.randint(5, 500)
    seed_days = rng.randint(0, min(days, 60))
    files: list[ArchiveFile] = []
    base: tuple[str, int] | None = None
    since_full = 0
    for day in range(days, 0, -1):
        if rng.random() < 0.1:
            continue  # a failed night
        t = (NOW - timedelta(days=day)).replace(hour=2, minute=0)
        guid = rng.getrandbits(63)
        if base is None or since_full >= rng.randint(3, 40):
            base, since_full = None, 0
        seed_era = day > days - seed_days
        files.append(make_file(t, guid, base, seed_era))
        base, since_full = (snap_name(t), guid), since_full + 1
    return files


@pytest.mark.parametrize("seed", range(300))
def test_prune_keeps_every_link_of_every_kept_point(seed: int) -> None:
    rng = random.Random(seed)
    files = generated_archive(rng)
    rules = parse_policy(rng.choice(POLICIES))
    plan = plan_prune("a", files, [], rules, NOW)
    deleted = {f.filename for f in plan.delete}
    remaining = [f for f in files if f.filename not in deleted]
    still = {p.snapshot for p in restore_points(remaining)}
    assert {p.snapshot for p in plan.kept} <= still  # every kept point still restores
    points = restore_points(files)
    if points:
        newest = max(points, key=point_time)
        assert newest.snapshot in {p.snapshot for p in plan.kept}
    for p in plan.kept:
        assert not deleted & {f.filename for f in p.chain}
    assert len(plan.keep) + len(plan.delete) + len(plan.untouched) == len(files)


def test_grid_keeps_dailies_then_weeklies_then_monthlies() -> None:
    files, base = [], None
    for day in range(400, 0, -1):
        t = (NOW - timedelta(days=day)).replace(hour=2, minute=0)
        files.append(make_file(t, day, base, False))
        base = (snap_name(t), day)
    rules = parse_policy("all 7d, daily 30d, weekly 12w, monthly 12m")
    kept = {point_time(p) for p in kept_points(restore_points(files), rules, NOW)}
    every = [point_time(p) for p in restore_points(files)]
    age = {t: NOW - t for t in every}
    month_ends = {max(t for t in every if (t.year, t.month) == (m.year, m.month)) for m in every}
    expected = {
        t
        for t in every
        if age[t] <= timedelta(days=30)
        or (age[t] <= timedelta(weeks=12) and t.weekday() == 6)  # newest of its ISO week
        or (age[t] <= timedelta(days=12 * 31) and t in month_ends)
    }
    assert kept == expected
    assert sum(1 for t in kept if age[t] <= timedelta(days=30)) == 29  # 02:00 on days 1..29
    # one incremental chain from the first full: nothing can be deleted without breaking it
    plan = plan_prune("a", files, [], rules, NOW)
    assert plan.delete == []


def test_chains_that_no_kept_point_needs_are_deleted_whole_and_dependents_first() -> None:
    files = []
    for chain_start in (60, 30, 3):  # three chains, each a full and two incrementals
        base = None
        for day in (chain_start, chain_start - 1, chain_start - 2):
            t = (NOW - timedelta(days=day)).replace(hour=2, minute=0)
            files.append(make_file(t, day, base, False))
            base = (snap_name(t), day)
    plan = plan_prune("a", files, [], parse_policy("all 7d"), NOW)
    assert [f.name.snapshot for f in plan.delete] == [f.name.snapshot for f in files[:6]][::-1]
    assert plan.bytes_freed == 600


def test_untouched_files_and_stale_partials() -> None:
    t = NOW - timedelta(days=2)
    orphan = make_file(t, 1, ("gone-snapshot", 5), False)  # base missing: in no chain
    unparsed = parse_backup_name("elabfs-a@x.zst")
    assert unparsed is not None
    partials = [
        StoreEntry("elabfs-a@new.zst.partial", 5, (NOW - timedelta(hours=30)).timestamp()),
        StoreEntry("elabfs-a@newer.zst.partial", 5, (NOW - timedelta(hours=2)).timestamp()),
    ]
    plan = plan_prune("a", [orphan], partials, parse_policy("all 1d"), NOW)
    assert plan.untouched == [orphan] and plan.delete == []
    assert [p.name for p in plan.stale_partials] == ["elabfs-a@new.zst.partial"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dayly 30d", "unknown period 'dayly'"),
        ("daily", "is not a rule"),
        ("daily 0d", "at least 1"),
        ("daily 30x", "is not a rule"),
        ("", "is not a rule"),
    ],
)
def test_bad_policy_is_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_policy(text)
    assert "\n" not in str(caught.value)


def test_without_a_policy_every_point_and_file_is_kept() -> None:
    files = generated_archive(random.Random(7))
    plan = plan_prune("a", files, [], None, NOW)
    assert plan.delete == [] and plan.dropped == []
    assert len(plan.kept) == len(restore_points(files))


# -- partial uploads with checkpoints wait longer: they can be resumed -------------------------

CUT = "elabfs-a@s1.zst.0123456789ab"  # a cut upload's attempt: data partial and checkpoints


def cut_upload(age: timedelta, size: int = 1_800_000_000_000) -> list[StoreEntry]:
    when = (NOW - age).timestamp()
    return [StoreEntry(f"{CUT}.partial", size, when), StoreEntry(f"{CUT}.ckpt.partial", 26, when)]


def test_a_partial_with_checkpoints_survives_the_prune_a_day_after_its_cut() -> None:
    """A 2 TB full at 10 MB/s (~55 h) cut on Saturday is still there for Monday's resume."""
    plan = plan_prune("a", [], cut_upload(timedelta(hours=25)), None, NOW)
    assert plan.stale_partials == [], "1.8 TB of a resumable upload deleted as stale"
    assert [p.name for p in plan.resumable_partials] == [f"{CUT}.partial", f"{CUT}.ckpt.partial"]
    assert plan.bytes_freed == 0
    assert set(plan.partial_reasons.values()) == {
        "partial upload with checkpoints, kept 7 days for a resume"
    }


def test_a_partial_with_checkpoints_goes_with_them_after_the_longer_limit() -> None:
    plan = plan_prune(
        "a",
        [],
        cut_upload(timedelta(days=3)),
        None,
        NOW,
        timedelta(hours=24),
        resumable_after=timedelta(days=2),
    )
    assert [p.name for p in plan.stale_partials] == [f"{CUT}.partial", f"{CUT}.ckpt.partial"]
    assert plan.resumable_partials == []
    assert set(plan.partial_reasons.values()) == {
        "partial upload with checkpoints, older than 2 days"
    }


def test_a_recent_checkpoint_keeps_an_older_data_partial() -> None:
    """The pair's last write counts: a resume writes the data and checkpoint files in turn."""
    old, recent = cut_upload(timedelta(days=8))[0], cut_upload(timedelta(days=6))[1]
    plan = plan_prune("a", [], [old, recent], None, NOW)
    assert plan.stale_partials == [] and plan.resumable_partials == [old, recent]


def test_partials_without_checkpoints_still_go_after_a_day() -> None:
    """A plain partial, and a checkpoint file whose data partial is gone, cannot resume."""
    when = (NOW - timedelta(hours=25)).timestamp()
    dead = StoreEntry("elabfs-a@s2.zst.00000000000a.partial", 5, when)
    lone = StoreEntry("elabfs-a@s3.zst.00000000000b.ckpt.partial", 26, when)
    plan = plan_prune("a", [], [dead, lone, *cut_upload(timedelta(hours=25))], None, NOW)
    assert plan.stale_partials == [dead, lone]
    assert plan.partial_reasons[dead.name] == "stale partial upload"
    assert plan.partial_reasons[lone.name] == "checkpoints of a gone partial upload"
