"""Process-wide listeners for running streams, so a terminal can draw progress bars.

The pipeline reports to a per-stream callback; the task layer forwards each
report here, and the CLI (which runs the flow in its own process) listens.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass


@dataclass(frozen=True)
class StreamProgress:
    """One report about one member's running stream."""

    member: str
    filename: str
    raw_bytes: int
    stored_bytes: int
    estimate: int | None
    done: bool = False


Listener = Callable[[StreamProgress], None]
_listeners: list[Listener] = []
_lock = threading.Lock()


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Send every stream report of this process to `listener` while the block runs."""
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)


def publish(report: StreamProgress) -> None:
    """Hand a report to the listeners; a failing listener never breaks a stream."""
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        with suppress(Exception):
            listener(report)
