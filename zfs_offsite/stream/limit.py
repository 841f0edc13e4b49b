"""The upload bandwidth limit: one token bucket that every stream of this process draws on.

`target.bandwidth` caps the link, not each stream: members uploading in
parallel share one budget, so the process keeps a single `Limiter`
(`process_limiter`). The writer of each stream asks it for every chunk just
before the chunk goes to the store (stream/upload.py), so the limit is on the
stored bytes, those that cross the link.

The bucket is a small one (a tenth of a second of the rate): after an idle
moment a stream may send that much at once, never more. A chunk bigger than
the bucket is allowed and paid for by waiting, so the average holds whatever
the chunk size. The rate is looked up on the local clock at every request and
every wait slice, so a stream that crosses a window boundary changes pace then.

A wait is cut into slices of at most `SLICE_SECONDS` and looks at the stop
switch between them: Ctrl-C or SIGTERM is never held up by the limiter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from datetime import time as time_of_day

from zfs_offsite import cancel
from zfs_offsite.stream.progress import ProgressFn, StreamProgress
from zfs_offsite.values.bandwidth import Bandwidth, format_rate

BURST_SECONDS = 0.1  # the bucket holds this much of the rate
SLICE_SECONDS = 0.25  # a waiting stream looks at the stop switch this often


def _local_time() -> time_of_day:
    return datetime.now().time()  # the process's time zone: windows are local time


class TokenBucket:
    """Pure: how long a request for bytes must wait at a rate, with times from any clock.

    Kept as two running totals: `reserved`, every byte handed out, and
    `allowed`, the bytes the rate has allowed by `updated`; tokens are
    `allowed - reserved`, at most the burst. A request gets a ticket (the
    total it needs `allowed` to reach) and may go once `allowed` has got
    there, so waiters go in order and a rate change applies to what is
    still owed, not to what was already paid.
    """

    def __init__(self, burst_seconds: float = BURST_SECONDS) -> None:
        self.burst_seconds = burst_seconds
        self.allowed = 0.0
        self.reserved = 0.0
        self.updated: float | None = None
        self.rate: float | None = None  # the rate of the last look, in force since `updated`

    def _advance(self, now: float, rate: float | None) -> None:
        """Earn at the rate in force since the last look, then hold at most the new burst."""
        if self.updated is None:
            self.allowed = self.reserved + (rate or 0.0) * self.burst_seconds  # starts full
        elif self.rate is None:
            self.allowed = max(self.allowed, self.reserved)  # it was unlimited meanwhile
        else:
            self.allowed += max(0.0, now - self.updated) * self.rate
        if rate is None:
            self.allowed = max(self.allowed, self.reserved)  # unlimited: nobody waits
        else:
            self.allowed = min(self.allowed, self.reserved + rate * self.burst_seconds)
        self.rate = rate
        self.updated = now

    def reserve(self, size: int, now: float, rate: float | None) -> float:
        """Book `size` bytes at `now`; the ticket to pass to `delay`."""
        self._advance(now, rate)
        self.reserved += size
        return self.reserved

    def delay(self, ticket: float, now: float, rate: float | None) -> float:
        """Seconds until `ticket`'s bytes may go at `rate` (0: now); call again after waiting."""
        self._advance(now, rate)
        missing = ticket - self.allowed
        if missing < 1 or rate is None:  # under a byte: float rounding, not a debt
            return 0.0
        return missing / rate

    def refund(self, size: int) -> None:
        """Give back a booking whose bytes were never sent (the stream stopped waiting)."""
        self.allowed += size


class Limiter:
    """The process's upload limit: thread-safe; a wait honours the stop switch.

    `clock`, `local_time` and `sleep` are injectable so the logic can be tested
    without waiting; by default the monotonic clock, the local time of day and
    time.sleep.
    """

    def __init__(
        self,
        bandwidth: Bandwidth,
        *,
        clock: Callable[[], float] = time.monotonic,
        local_time: Callable[[], time_of_day] = _local_time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.bandwidth = bandwidth
        self._clock = clock
        self._local_time = local_time
        self._sleep = sleep
        self._lock = threading.Lock()
        self._bucket = TokenBucket()

    def rate_now(self) -> float | None:
        """The limit in force now, bytes/s; None: unlimited."""
        return self.bandwidth.rate_at(self._local_time())

    def take(self, size: int, tick: Callable[[], None] | None = None) -> None:
        """Return once `size` more bytes fit in the limit; Cancelled if a stop is requested.

        `tick` (the upload's heartbeat: the lock's refresh) is called between
        wait slices, so a long wait keeps the member's lock fresh.
        """
        with self._lock:
            ticket = self._bucket.reserve(size, self._clock(), self.rate_now())
        try:
            while True:
                with self._lock:
                    wait = self._bucket.delay(ticket, self._clock(), self.rate_now())
                if wait <= 0:
                    return
                if tick is not None:
                    tick()
                cancel.check()
                self._sleep(min(wait, SLICE_SECONDS))
        except BaseException:
            with self._lock:
                self._bucket.refund(size)  # the other streams need not pay for it
            raise


_process_limiter: Limiter | None = None
_process_lock = threading.Lock()


def process_limiter(bandwidth: Bandwidth) -> Limiter | None:
    """This process's one limiter for `bandwidth`, None when nothing is limited.

    Every stream of the process gets the same object, so parallel members share
    the budget. A long-lived process (serve) that loads a changed setting keeps
    the one bucket and takes the new limits.
    """
    global _process_limiter
    if bandwidth.unlimited:
        return None
    with _process_lock:
        if _process_limiter is None:
            _process_limiter = Limiter(bandwidth)
        else:
            _process_limiter.bandwidth = bandwidth
        return _process_limiter


class RateMeter:
    """One stream's view of the limit: progress reports with the limit and the rate achieved.

    Wraps the stream's progress callback (which may be None) and adds to each
    report the limit in force and the rate of the bytes sent: the stored bytes
    this attempt sent per second since it began sending. While a resume checks
    an earlier attempt's bytes nothing is sent: those reports carry no rate, and
    the sending time starts after the last of them. It remembers the limits seen,
    for the run's report.
    """

    def __init__(
        self,
        limiter: Limiter | None,
        forward: ProgressFn | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limiter = limiter
        self.forward = forward
        self._clock = clock
        self.started = clock()
        self.limits: list[float | None] = []
        self._note_limit()

    def _note_limit(self) -> str:
        if self.limiter is None:
            return ""
        limit = self.limiter.rate_now()
        if not self.limits or self.limits[-1] != limit:
            self.limits.append(limit)
        return format_rate(limit)

    def __call__(self, report: StreamProgress) -> None:
        limit = self._note_limit()
        now = self._clock()
        if report.checking:
            self.started = now  # sending starts after the check (within a report's interval)
            rate = None
        else:
            elapsed = now - self.started
            rate = report.sent_bytes / elapsed if elapsed > 0 else None
        if self.forward is not None:
            self.forward(replace(report, limit=limit, rate=rate))

    @property
    def limit_text(self) -> str:
        """The limits in force while the stream ran: `2 MB/s`, `10 MB/s, then 40 MB/s`, ``."""
        return ", then ".join(format_rate(limit) for limit in self.limits)
