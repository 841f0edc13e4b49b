"""Ctrl-C and SIGTERM for commands that run a flow: stop the streams, say so, exit 130/143.

The flow's own handler (flows/interrupts.py) tells every stream to stop; this
layer turns what reaches the command (KeyboardInterrupt, Prefect's
TerminationSignal, or a run that ended after a stop was requested) into one
line and the shell's conventional exit code (INTERRUPTED, TERMINATED in
cli/exit_codes.py). One Ctrl-C is enough.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from cli import exit_codes
from zfs_offsite import cancel

EXIT_CODES = {"SIGINT": exit_codes.INTERRUPTED, "SIGTERM": exit_codes.TERMINATED}


class Interrupted(Exception):
    """A stop was requested while a command ran; carries the signal's name."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_code = EXIT_CODES.get(reason, exit_codes.FAILED)


def _stop(signum: int, frame: FrameType | None) -> None:
    cancel.request(signal.Signals(signum).name)
    raise KeyboardInterrupt


@contextmanager
def interruptible() -> Iterator[None]:
    """Run a flow; raise Interrupted if a signal stopped it (however the engine ended it)."""
    from prefect.exceptions import TerminationSignal

    cancel.reset()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, _stop)
    try:
        yield
    except (KeyboardInterrupt, TerminationSignal) as exc:
        reason = cancel.requested() or (
            "SIGTERM" if isinstance(exc, TerminationSignal) else "SIGINT"
        )
        raise Interrupted(reason) from None
    finally:
        for sig, prior in previous.items():
            signal.signal(sig, prior)
    if requested := cancel.requested():
        raise Interrupted(requested)
