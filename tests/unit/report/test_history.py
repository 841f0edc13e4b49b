"""`history`'s rows from run records (pure, no server): nights, last good backups, detail."""

from __future__ import annotations

from pathlib import Path

from zfs_offsite.report.history import (
    DOCUMENT_KEYS,
    SCHEMA,
    Run,
    attempt_tags,
    document,
    last_good,
    member_rows,
    night_row,
    nights,
)

NIGHT = {"night": "backup-2026-11-27", "attempts": 1, "message": ""}


def test_a_retried_upload_lists_its_failed_try() -> None:
    row = {
        "member": "erin",
        "action": "full",
        "attempt": 1,
        "upload_tries": 2,
        "earlier_tries": ["try 1 failed after 21.3 s: upload of erin/f.zst failed: cut"],
    }
    [out] = member_rows(NIGHT, [[row]])
    assert out["earlier_attempts"] == [
        "attempt 1: upload try 1 failed after 21.3 s: upload of erin/f.zst failed: cut"
    ]
    assert out["upload_tries"] == 2


def test_a_ui_retry_keeps_the_earlier_attempts_tries_too() -> None:
    first = {"member": "erin", "action": "failed", "error": "x", "attempt": 1}
    first["earlier_tries"] = ["try 1 failed after 2.0 s: cut"]
    second = {"member": "erin", "action": "full", "attempt": 2, "earlier_tries": []}
    [out] = member_rows(NIGHT, [[first], [second]])
    assert out["earlier_attempts"] == [
        "attempt 1: upload try 1 failed after 2.0 s: cut",
        "attempt 1: failed: x",
    ]


def test_rows_written_before_tries_were_recorded_still_read() -> None:
    [out] = member_rows(NIGHT, [[{"member": "erin", "action": "full", "attempt": 1}]])
    assert out["earlier_attempts"] == []


def _sent(member: str, snapshot: str, finished: str, **more: object) -> dict[str, object]:
    return {
        "member": member,
        "action": "full",
        "target": snapshot,
        "remote_path": f"{member}/p-{member}@{snapshot}.zst",
        "stored_bytes": 1000,
        "finished": finished,
        "error": "",
    } | more


def _run(name: str, *tables: list[dict[str, object]], **more: object) -> Run:
    fields: dict = {"state": "Completed", "attempts": len(tables) or 1} | more
    return Run(
        name,
        "id-" + name,
        "2026-12-07T02:30:00+00:00",
        url="u/" + name,
        tables=list(tables),
        **fields,
    )


def test_a_night_counts_its_members_and_names_the_failed() -> None:
    table = [
        _sent("alice", "s1", "2026-12-07T02:31:00+00:00"),
        {"member": "bob", "action": "failed", "error": "permission denied", "stored_bytes": ""},
        {"member": "carol", "action": "up to date", "stored_bytes": ""},
    ]
    row = night_row(_run("backup-nas1.lan-2026-12-07-0230", table, state="Failed"))
    assert (row["host"], row["state"], row["members_ok"]) == ("nas1.lan", "Failed", 2)
    assert row["members_failed"] == ["bob"]
    assert row["stored_bytes"] == 1000


def test_a_retried_night_counts_its_last_attempt() -> None:
    first = [_sent("alice", "s1", "t1"), {"member": "bob", "action": "failed", "error": "x"}]
    second = [_sent("alice", "s1", "t1", source="from cache"), _sent("bob", "s1", "t2")]
    row = night_row(_run("backup-nas1-2026-12-07-0230", first, second))
    assert (row["attempts"], row["members_ok"], row["members_failed"]) == (2, 2, [])
    assert row["stored_bytes"] == 2000


def test_a_run_without_a_report_has_no_members() -> None:
    row = night_row(_run("backup-nas1-2026-12-07-0230", state="Crashed", message="killed"))
    assert (row["members_ok"], row["members_failed"], row["stored_bytes"]) == (0, [], 0)
    assert row["message"] == "killed"


def test_last_good_is_the_newest_stored_file_never_a_failure_or_dry_run() -> None:
    older = _run("backup-nas1-2026-12-06-0230", [_sent("alice", "s1", "2026-12-06T02:31:00")])
    newer = _run(
        "backup-nas1-2026-12-07-0230",
        [
            _sent("alice", "s2", "2026-12-07T02:31:00", action="incremental", base="s1"),
            _sent("bob", "s2", "2026-12-07T02:32:00", action="failed", error="cut"),
        ],
    )
    dry = _run(
        "backup-nas1-2026-12-08-0230-dry-run",
        [_sent("alice", "s3", "2026-12-08T02:31:00", action="full (dry run)")],
    )
    up_to_date = _run(
        "backup-nas1-2026-12-09-0230",
        [{"member": "alice", "action": "up to date", "target": "s2", "remote_path": ""}],
    )
    rows = last_good([dry, up_to_date, newer, older])  # newest first, as the server sorts
    assert [(r["member"], r["snapshot"], r["file"], r["night"]) for r in rows] == [
        ("alice", "s2", "alice/p-alice@s2.zst", "backup-nas1-2026-12-07-0230")
    ]
    assert rows[0]["finished"] == "2026-12-07T02:31:00" and rows[0]["base"] == "s1"


def test_only_a_run_that_runs_again_is_tagged_retry() -> None:
    assert attempt_tags(1) == []
    assert attempt_tags(3) == ["retry", "attempt-3"]


HISTORY_DOC = Path(__file__).resolve().parents[3] / "docs" / "reference" / "history-json.md"


def test_the_json_keys_are_those_documented_in_the_history_page() -> None:
    section = HISTORY_DOC.read_text()
    keys = set(DOCUMENT_KEYS) | {k for view in SCHEMA.values() for k in view}
    assert sorted(k for k in keys if f"`{k}`" not in section) == []
    assert set(document("s", "a", "b", [], [], [])) == set(DOCUMENT_KEYS)


def test_the_views_rows_have_their_schemas_keys() -> None:
    run = _run("backup-nas1-2026-12-07-0230", [_sent("alice", "s1", "t1")])
    assert set(night_row(run)) == set(SCHEMA["nights"])
    assert set(last_good([run])[0]) == set(SCHEMA["last_good"])


def test_a_member_filter_counts_only_that_member_and_its_nights() -> None:
    both = _run(
        "backup-nas1-2026-12-07-0230",
        [_sent("alice", "s1", "t1"), {"member": "bob", "action": "failed", "error": "x"}],
    )
    bob_only = _run("backup-nas1-2026-12-08-0230-members-bob", [_sent("bob", "s2", "t2")])
    crashed = _run("backup-nas1-2026-12-09-0230", state="Crashed")
    rows = nights([crashed, bob_only, both], {"alice"})
    assert [(r["night"], r["members_ok"], r["members_failed"]) for r in rows] == [
        ("backup-nas1-2026-12-09-0230", 0, []),
        ("backup-nas1-2026-12-07-0230", 1, []),
    ]
    assert rows[1]["stored_bytes"] == 1000
    assert len(nights([crashed, bob_only, both])) == 3
