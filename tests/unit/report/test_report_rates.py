"""The report's rates count the bytes sent over the time spent sending; a resume says so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from zfs_offsite.jobs.backup import BackupResult
from zfs_offsite.plan.backup import Action
from zfs_offsite.report.run_report import MemberOutcome, result_line, row, upload_rate_lines
from zfs_offsite.stream.upload import StreamResult

MB = 1_000_000
T0 = datetime(2026, 11, 27, 2, 30, tzinfo=UTC)


def resumed_upload() -> MemberOutcome:
    """A 300 MB file (600 MB raw) of which 128 MB were stored by an attempt that was cut:
    2 s checking them, then 172 MB sent in 8.6 s at a 20 MB/s limit."""
    stream = StreamResult(
        raw_bytes=600 * MB,
        stored_bytes=300 * MB,
        sha256="0" * 64,
        started=T0,
        finished=T0 + timedelta(seconds=10.6),
        resumed_bytes=128 * MB,
        sending_started=T0 + timedelta(seconds=2),
    )
    result = BackupResult("alice", Action.FULL, "first", stream=stream, bandwidth="20 MB/s")
    return MemberOutcome("alice", result)


def test_a_resumed_row_counts_what_it_sent_while_sending() -> None:
    r = row(resumed_upload())
    assert r["resumed_mb"] == "128.0"
    assert r["stored_mb_per_s"] == "20.00"  # 172 MB in 8.6 s, not 300 MB in 10.6 s
    assert r["mb_per_s"] == "40.0"  # the raw bytes behind those 172 MB (ratio 2)
    assert r["seconds"] == "10.6"  # the whole upload, check included
    assert "(128000000 resumed, not sent again)" in result_line(resumed_upload())


def test_the_summary_rate_is_of_the_bytes_sent() -> None:
    [_, line] = upload_rate_lines([resumed_upload()])
    assert line.startswith("Uploaded: 172.0 MB in 9 s, 20.00 MB/s (bandwidth limit 20 MB/s)")
    assert line.endswith("; 128.0 MB resumed (stored by an earlier attempt, not sent again)")


def test_a_fresh_upload_has_no_resumed_figure() -> None:
    stream = StreamResult(300 * MB, 150 * MB, "0" * 64, T0, T0 + timedelta(seconds=10))
    r = row(MemberOutcome("bob", BackupResult("bob", Action.FULL, "first", stream=stream)))
    assert (r["resumed_mb"], r["stored_mb_per_s"], r["mb_per_s"]) == ("", "15.00", "30.0")
