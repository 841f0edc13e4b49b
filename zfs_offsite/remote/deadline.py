"""A deadline on blocking file-system calls that Python cannot interrupt.

A write, fsync, rename or unlink on a frozen (`fsfreeze`), hung (a USB disk
that stopped answering, a dead NFS server) file system blocks in the kernel,
and no signal or timeout in Python ends it. So each call runs in a helper
thread, and the caller waits for it at most `seconds`: past that the store is
stalled, the caller gets `StallError` (retryable) and every later call fails at
once, because it would only queue behind the stuck one. The stuck helper is
abandoned; it finishes (into a `.partial` that is never renamed) if the file
system ever comes back, then ends.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from typing import TypeVar

from zfs_offsite.errors import StallError

T = TypeVar("T")


class _Helper(threading.Thread):
    """Runs the calls handed to it, one at a time, until told to stop (None)."""

    def __init__(self) -> None:
        super().__init__(name="zfs-offsite-store-call", daemon=True)
        self.calls: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()

    def run(self) -> None:
        while (call := self.calls.get()) is not None:
            call()


class Deadline:
    """Runs calls that may block forever, failing any that takes longer than `seconds`."""

    def __init__(self, seconds: float | None, where: str) -> None:
        self.seconds = seconds
        self.where = where
        self._lock = threading.Lock()
        self._idle: list[_Helper] = []
        self._stall: str | None = None  # the first stall's message, once stalled

    @property
    def stalled(self) -> bool:
        return self._stall is not None

    def run(self, doing: str, call: Callable[[], T]) -> T:
        """`call()`'s result or exception; StallError once it has run `seconds` without end."""
        if self.seconds is None:
            return call()
        if self._stall is not None:
            raise StallError(self._stall)
        with self._lock:
            helper = self._idle.pop() if self._idle else None
        if helper is None:
            helper = _Helper()
            helper.start()
        done = threading.Event()
        outcome: list[tuple[bool, object]] = []

        def job() -> None:
            try:
                outcome.append((True, call()))
            except BaseException as exc:
                outcome.append((False, exc))
            finally:
                done.set()

        helper.calls.put(job)
        if not done.wait(self.seconds):
            helper.calls.put(None)  # it ends once (if ever) the stuck call returns
            error = StallError.after(self.where, self.seconds, doing)
            self._stall = str(error)
            raise error
        with self._lock:
            self._idle.append(helper)
        ok, value = outcome[0]
        if not ok:
            assert isinstance(value, BaseException)
            raise value
        return value  # type: ignore[return-value]  # call()'s T

    def later(self, call: Callable[[], object]) -> None:
        """Run `call` without waiting for it (releasing a file after a stall)."""

        def quietly() -> None:
            with contextlib.suppress(Exception):  # best effort: the file is abandoned anyway
                call()

        threading.Thread(target=quietly, name="zfs-offsite-store-release", daemon=True).start()

    def close(self) -> None:
        """End the idle helpers (a stuck one ends when its call returns)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for helper in idle:
            helper.calls.put(None)
