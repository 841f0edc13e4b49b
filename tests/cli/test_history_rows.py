"""`history` rows: an upload the task retried within a night says so (pure, no server)."""

from __future__ import annotations

from cli.history_cmd import member_rows

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
