"""One switch that stops every stream of this process: signals and Prefect cancellation.

A signal handler or a cancellation hook calls `request()`; the upload (stream/upload.py), the
lock wait and the restore loop call `check()` at least once a second and stop
with `Cancelled`, cleaning up on the way out (send killed, a partial without
checkpoints removed, one with them kept to resume, lock released). Threads
cannot be interrupted from outside, so they look.
"""

from __future__ import annotations

import threading

from zfs_offsite.errors import Cancelled

_requested = threading.Event()
_reason = ""


def request(reason: str) -> None:
    """Ask every running stream to stop; `reason` goes into their errors (e.g. "SIGTERM")."""
    global _reason
    _reason = _reason or reason
    _requested.set()


def requested() -> str | None:
    """The reason, if a stop was requested."""
    return _reason if _requested.is_set() else None


def check() -> None:
    """Raise Cancelled if a stop was requested."""
    if _requested.is_set():
        raise Cancelled(f"stopped by {_reason}")


def reset() -> None:
    """Forget a request (a long-lived process, e.g. `serve` or tests, runs again)."""
    global _reason
    _requested.clear()
    _reason = ""
