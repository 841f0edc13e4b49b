"""Prune's decision under a store's retention (S3 Object Lock), and the retain-until date.

Pure: no store. A file under retention is kept with the date it ends, and the
chain files it needs are kept with it, so what a prune leaves still restores.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.unit.plan.test_retention import make_file, snap_name
from zfs_offsite.archive.model import ArchiveFile
from zfs_offsite.plan.retention import plan_prune
from zfs_offsite.remote.s3_retention import retain_until
from zfs_offsite.values.policy import parse_policy

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def chain(*days_ago: int) -> list[ArchiveFile]:
    """A full `days_ago[0]` days ago and incrementals on it, one per later day given."""
    files: list[ArchiveFile] = []
    base = None
    for day in days_ago:
        t = (NOW - timedelta(days=day)).replace(hour=2, minute=0)
        files.append(make_file(t, day, base, False))
        base = (snap_name(t), day)
    return files


def test_the_retain_until_date_is_whole_seconds_n_days_on() -> None:
    written = datetime(2026, 12, 7, 15, 14, 2, 379040, tzinfo=UTC)
    assert retain_until(written, 30) == datetime(2027, 1, 6, 15, 14, 2, tzinfo=UTC)


def test_a_locked_file_and_the_chain_it_needs_are_kept_with_why() -> None:
    full, inc = chain(40, 39)
    (newest,) = chain(1)
    files = [full, inc, newest]
    rules = parse_policy("daily 7d")
    plain = plan_prune("tank", files, [], rules, NOW)
    assert {f.filename for f in plain.delete} == {full.filename, inc.filename}

    until = NOW + timedelta(hours=5)
    plan = plan_prune("tank", files, [], rules, NOW, locked={inc.filename: until})
    assert plan.delete == []
    assert plan.kept_reasons[inc.filename] == "object lock until 2026-12-07 17:00:00 UTC"
    assert plan.kept_reasons[full.filename] == (
        f"needed by {inc.filename} (object lock until 2026-12-07 17:00:00 UTC)"
    )


def test_a_lock_that_has_ended_keeps_nothing() -> None:
    (full,) = chain(40)
    (newest,) = chain(1)
    ended = {full.filename: NOW - timedelta(seconds=1)}
    plan = plan_prune("tank", [full, newest], [], parse_policy("daily 7d"), NOW, locked=ended)
    assert [f.filename for f in plan.delete] == [full.filename]
    assert plan.kept_reasons == {}


def test_a_locked_parent_keeps_only_itself() -> None:
    """Its dependents go (newest first), the parent stays whole until its date."""
    full, inc = chain(40, 39)
    (newest,) = chain(1)
    until = NOW + timedelta(days=2)
    plan = plan_prune(
        "tank",
        [full, inc, newest],
        [],
        parse_policy("daily 7d"),
        NOW,
        locked={full.filename: until},
    )
    assert [f.filename for f in plan.delete] == [inc.filename]
    assert set(plan.kept_reasons) == {full.filename}
