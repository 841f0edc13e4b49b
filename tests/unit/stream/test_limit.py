"""The bandwidth limiter: token bucket arithmetic, window changes, the stop switch, sharing.

Pure logic on an injected clock (`sleep` advances it), so minutes of traffic take
no time; one short test on the real clock checks that threads never beat the limit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from datetime import time as time_of_day

import pytest

from zfs_offsite import cancel
from zfs_offsite.errors import Cancelled
from zfs_offsite.stream.limit import (
    BURST_SECONDS,
    SLICE_SECONDS,
    Limiter,
    RateMeter,
    TokenBucket,
    process_limiter,
)
from zfs_offsite.stream.progress import StreamProgress
from zfs_offsite.values.bandwidth import parse_bandwidth

MB = 1_000_000


class FakeClock:
    """Monotonic seconds and a local time of day that move only when someone sleeps."""

    def __init__(self, local: str = "2026-11-27 03:00:00") -> None:
        self.now = 1000.0
        self.start = self.now
        self.local0 = datetime.fromisoformat(local)
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds

    def local_time(self) -> time_of_day:
        return (self.local0 + timedelta(seconds=self.now - self.start)).time()

    def limiter(self, text: str) -> Limiter:
        return Limiter(
            parse_bandwidth(text), clock=self, local_time=self.local_time, sleep=self.sleep
        )


@pytest.fixture(autouse=True)
def no_stop() -> Iterator[None]:
    cancel.reset()
    yield
    cancel.reset()


def test_bucket_starts_with_a_small_burst_then_paces() -> None:
    bucket = TokenBucket()
    rate = 2 * MB
    burst = rate * BURST_SECONDS
    ticket = bucket.reserve(int(burst), 0.0, rate)
    assert bucket.delay(ticket, 0.0, rate) == 0.0  # the burst goes at once
    ticket = bucket.reserve(MB, 0.0, rate)
    assert bucket.delay(ticket, 0.0, rate) == pytest.approx(0.5)  # 1 MB at 2 MB/s
    assert bucket.delay(ticket, 0.3, rate) == pytest.approx(0.2)
    assert bucket.delay(ticket, 0.5, rate) == 0.0


def test_bucket_does_not_save_up_while_idle() -> None:
    bucket = TokenBucket()
    bucket.delay(bucket.reserve(MB, 0.0, MB), 0.0, MB)
    # An hour idle earns no more than the burst: the next 10 MB still take ~10 s.
    ticket = bucket.reserve(10 * MB, 3600.0, MB)
    assert bucket.delay(ticket, 3600.0, MB) == pytest.approx(10 - BURST_SECONDS)


def test_waiters_go_in_order_and_a_rate_change_applies_to_what_is_owed() -> None:
    bucket = TokenBucket(burst_seconds=0)
    first = bucket.reserve(MB, 0.0, MB)
    second = bucket.reserve(MB, 0.0, MB)
    assert bucket.delay(first, 0.0, MB) == pytest.approx(1.0)
    assert bucket.delay(second, 0.0, MB) == pytest.approx(2.0)
    # After 0.5 s the rate doubles: 0.5 MB paid, 1.5 MB owed at 2 MB/s.
    assert bucket.delay(second, 0.5, 2 * MB) == pytest.approx(0.75)
    assert bucket.delay(second, 0.6, None) == 0.0  # unlimited: nobody waits


def test_a_minute_of_chunks_runs_at_the_limit() -> None:
    clock = FakeClock()
    limiter = clock.limiter("2MB/s")
    sent = 0
    while clock.now - clock.start < 60:
        limiter.take(1024 * 1024)
        sent += 1024 * 1024
    rate = sent / (clock.now - clock.start)
    assert rate == pytest.approx(2 * MB, rel=0.01)
    assert max(clock.sleeps) <= SLICE_SECONDS


def test_two_streams_share_one_budget() -> None:
    clock = FakeClock()
    limiter = clock.limiter("5MB/s")
    sent = {"a": 0, "b": 0}
    while clock.now - clock.start < 30:
        for stream, size in (("a", 1024 * 1024), ("b", 256 * 1024)):
            limiter.take(size)
            sent[stream] += size
    total = sum(sent.values()) / (clock.now - clock.start)
    assert total == pytest.approx(5 * MB, rel=0.01)


def test_the_rate_changes_as_the_clock_crosses_a_window_boundary() -> None:
    clock = FakeClock("2026-11-27 19:59:30")
    limiter = clock.limiter("08:00-20:00 1MB/s, 4MB/s")
    sent_by_minute: dict[int, int] = {}
    while clock.now - clock.start < 60:
        limiter.take(100_000)
        minute = clock.local_time().minute
        sent_by_minute[minute] = sent_by_minute.get(minute, 0) + 100_000
    assert sent_by_minute[59] == pytest.approx(30 * MB, rel=0.05)
    assert sent_by_minute[0] == pytest.approx(120 * MB, rel=0.05)


def test_a_wait_ends_when_its_window_turns_unlimited() -> None:
    clock = FakeClock("2026-11-27 07:59:59")
    limiter = clock.limiter("22:00-08:00 20kB/s")
    limiter.take(10 * MB)  # at 20 kB/s: 500 s; the window ends after one
    assert clock.now - clock.start == pytest.approx(1.0, abs=SLICE_SECONDS)


def test_a_stop_request_ends_a_long_wait_and_the_heartbeat_keeps_beating() -> None:
    clock = FakeClock()
    limiter = clock.limiter("10kB/s")
    beats: list[float] = []

    def tick() -> None:
        beats.append(clock.now)
        if clock.now - clock.start > 5:
            cancel.request("SIGTERM")

    with pytest.raises(Cancelled, match="stopped by SIGTERM"):
        limiter.take(10 * MB, tick)  # would wait 1000 s
    assert clock.now - clock.start < 5 + 2 * SLICE_SECONDS
    assert len(beats) >= 5 / SLICE_SECONDS
    # The bytes never sent are given back: the next stream waits only for its own.
    cancel.reset()
    before = clock.now
    limiter.take(10_000)
    assert clock.now - before <= 1.0 + SLICE_SECONDS


def test_threads_never_beat_the_limit() -> None:
    limiter = Limiter(parse_bandwidth("4MB/s"))
    chunk, per_thread, threads = 64 * 1024, 8, 4
    total = chunk * per_thread * threads  # ~2.1 MB: about half a second

    def stream() -> None:
        for _ in range(per_thread):
            limiter.take(chunk)

    started = time.monotonic()
    workers = [threading.Thread(target=stream) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    assert elapsed >= (total - 4 * MB * BURST_SECONDS) / (4 * MB) * 0.99
    assert elapsed < total / (4 * MB) * 3  # generous: a busy machine only adds time


def test_the_process_has_one_limiter_and_none_when_unlimited() -> None:
    first = process_limiter(parse_bandwidth("2MB/s"))
    second = process_limiter(parse_bandwidth("08:00-20:00 1MB/s, 3MB/s"))
    assert first is not None and second is first
    assert str(second.bandwidth) == "08:00-20:00 1 MB/s, 3 MB/s"
    assert process_limiter(parse_bandwidth("unlimited")) is None


def test_the_meter_adds_the_limit_and_the_achieved_rate_to_progress() -> None:
    clock = FakeClock("2026-11-27 19:59:58")
    limiter = clock.limiter("08:00-20:00 1MB/s, 4MB/s")
    seen: list[StreamProgress] = []
    meter = RateMeter(limiter, seen.append, clock=clock)
    report = StreamProgress("alice", "f.zst")
    clock.sleep(1.0)
    meter(report.at(3 * MB, 1 * MB))
    clock.sleep(3.0)
    meter(report.at(9 * MB, 4 * MB))
    assert [(r.limit, r.rate) for r in seen] == [("1 MB/s", 1 * MB), ("4 MB/s", 1 * MB)]
    assert meter.limit_text == "1 MB/s, then 4 MB/s"


def test_without_a_limit_the_meter_only_forwards() -> None:
    seen: list[StreamProgress] = []
    meter = RateMeter(None, seen.append)
    meter(StreamProgress("alice", "f.zst").at(10, 5))
    assert seen[0].limit == "" and meter.limit_text == ""
    RateMeter(None, None)(StreamProgress("alice", "f.zst"))  # no callback: nothing to do


def test_a_resume_check_has_no_rate_and_then_the_rate_of_the_bytes_sent() -> None:
    clock = FakeClock("2026-11-27 12:00:00")
    limiter = clock.limiter("20MB/s")
    seen: list[StreamProgress] = []
    meter = RateMeter(limiter, seen.append, clock=clock)
    report = StreamProgress("alice", "f.zst")
    clock.sleep(2.0)  # 128 MiB checked against the earlier attempt's checkpoints in 2 s
    meter(replace(report.at(300 * MB, 128 * MB), checking=True))
    clock.sleep(1.0)  # then 20 MB sent in a second, at the limit
    meter(replace(report.at(350 * MB, 148 * MB), resumed_bytes=128 * MB))
    assert [(r.checking, r.rate) for r in seen] == [(True, None), (False, 20 * MB)]
