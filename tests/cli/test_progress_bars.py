"""The progress bar's link text: a resume's check, then the rate sent against the limit."""

from __future__ import annotations

from dataclasses import replace

from cli.progress_bars import link_text
from zfs_offsite.stream.progress import StreamProgress

REPORT = StreamProgress("alice", "f.zst", limit="20 MB/s")


def test_a_resume_check_shows_what_matched_not_a_rate() -> None:
    checking = replace(REPORT.at(400 << 20, 128 << 20), checking=True, rate=None)
    assert link_text(checking) == "checking the earlier upload: 128 MiB matched"
    assert link_text(replace(checking, limit="")) == "checking the earlier upload: 128 MiB matched"


def test_then_the_rate_sent_against_the_limit() -> None:
    sending = replace(REPORT.at(500 << 20, 150 << 20), resumed_bytes=128 << 20, rate=19.9e6)
    assert link_text(sending) == "19.90 MB/s sent, limit 20 MB/s"
