"""Progress of a running stream: the one value every layer reports, and its listeners.

`StreamProgress` is the only shape progress takes: the upload pipeline and the
restore's receive report it to a per-stream callback (`ProgressFn`), the task
layer forwards each report here, and the CLI (which runs the flow in its own
process) listens to draw progress bars.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class StreamProgress:
    """One report about one member's running stream (bytes so far; the estimate if known)."""

    member: str
    filename: str
    raw_bytes: int = 0
    stored_bytes: int = 0
    estimate: int | None = None
    done: bool = False
    rate: float | None = None  # stored bytes/s since the stream began
    limit: str = ""  # the bandwidth limit in force (`2 MB/s`, `unlimited`); "": none set
    # A resume: while `checking`, the regenerated stream is compared with an earlier
    # attempt's checkpoints and nothing is sent; `resumed_bytes` of `stored_bytes` were
    # found on the server and not sent again.
    checking: bool = False
    resumed_bytes: int = 0

    @property
    def sent_bytes(self) -> int:
        """Stored bytes this attempt sent over the link (what a bandwidth limit paces)."""
        return 0 if self.checking else self.stored_bytes - self.resumed_bytes

    def at(self, raw_bytes: int, stored_bytes: int) -> StreamProgress:
        """The same stream, further on."""
        return replace(self, raw_bytes=raw_bytes, stored_bytes=stored_bytes)


ProgressFn = Callable[[StreamProgress], None]
Listener = ProgressFn
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
