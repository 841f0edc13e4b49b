"""The ledger the CLI reports from when the Prefect server is lost: what is stored, what is not."""

from __future__ import annotations

from zfs_offsite.jobs import ledger
from zfs_offsite.jobs.backup import BackupResult
from zfs_offsite.jobs.ledger import NOT_FINISHED, Ledger
from zfs_offsite.plan.backup import Action, BackupPlan
from zfs_offsite.zfs.members import Member


def plan(member: str, action: Action, reason: str = "why") -> BackupPlan:
    return BackupPlan(member, f"pool/elabfs-{member}", action, reason)


def result(member: str, action: Action) -> BackupResult:
    return BackupResult(member, action, "why", remote_path=f"{member}/f.zst")


def test_a_planned_upload_is_failed_until_it_finishes() -> None:
    kept = Ledger()
    kept.planned(plan("erin", Action.FULL), result("erin", Action.FULL))
    assert kept.outcomes() == [("erin", None, NOT_FINISHED)]
    stored = result("erin", Action.FULL)
    kept.finished(stored)
    assert kept.outcomes() == [("erin", stored, None)]


def test_a_retry_that_stores_replaces_the_failed_try_but_not_the_reverse() -> None:
    kept = Ledger()
    kept.planned(plan("erin", Action.FULL), result("erin", Action.FULL))
    kept.failed("erin", "connection lost")
    assert kept.outcomes() == [("erin", None, "connection lost")]
    stored = result("erin", Action.FULL)
    kept.finished(stored)
    kept.failed("erin", "a late report of an earlier try")
    assert kept.outcomes() == [("erin", stored, None)]


def test_plans_that_send_nothing_are_done_and_a_conflict_is_a_failure() -> None:
    kept = Ledger()
    same = result("alice", Action.UP_TO_DATE)
    kept.planned(plan("alice", Action.UP_TO_DATE), same)
    kept.planned(plan("bob", Action.CONFLICT, "foreign file"), result("bob", Action.CONFLICT))
    assert kept.outcomes() == [("alice", same, None), ("bob", None, "member bob: foreign file")]


def test_a_member_that_cannot_be_backed_up_is_failed_from_discovery() -> None:
    kept = Ledger()
    bad = Member("pool/elabfs-x y", "pool/elabfs-x y", "x y", (), error="bad name: x y")
    good = Member("carol", "pool/elabfs-carol", "carol", ())
    kept.discovered([bad, good])
    assert kept.outcomes() == [
        ("pool/elabfs-x y", None, "bad name: x y"),
        ("carol", None, NOT_FINISHED),
    ]


def test_nothing_is_kept_unless_a_caller_opens_the_ledger() -> None:
    assert ledger.current() is None
    with ledger.keeping() as kept:
        assert ledger.current() is kept
    assert ledger.current() is None
