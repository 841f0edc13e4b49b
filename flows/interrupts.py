"""Clean stops: Ctrl-C, SIGTERM and a Prefect Cancel stop every stream of a run within a second.

Without this, the engine would wait for every upload to end before the run
could end as Cancelled; the streams run in worker threads and look at the
process-wide stop switch (`zfs_offsite.cancel`) instead.
"""

from __future__ import annotations

import functools
import inspect
import signal
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from zfs_offsite import cancel

T = TypeVar("T")
P = ParamSpec("P")


@contextmanager
def stop_streams_when_interrupted() -> Iterator[None]:
    """Ctrl-C, SIGTERM and a Prefect Cancel stop every stream of the run within a second.

    Each of them raises in the flow's main thread (KeyboardInterrupt, or
    Prefect's TerminationSignal from its own SIGTERM handler, which must stay
    installed for a Cancel to end as Cancelled). Seeing it pass, this tells
    the streams running in worker threads to stop (`zfs_offsite.cancel`):
    each keeps its partial file if it has checkpoints (else removes it) and
    releases its member lock, so the engine does not wait for uploads to finish
    before the run ends.
    """
    cancel.reset()
    try:
        yield
    except BaseException as exc:
        if not isinstance(exc, Exception):  # an interrupt, not an error of the run
            number = getattr(exc, "signal", None)  # Prefect's TerminationSignal carries it
            cancel.request(signal.Signals(number).name if number else "SIGINT")
        raise


def stops_streams_when_interrupted(body: Callable[P, T]) -> Callable[P, T]:
    """Run a flow's body (decorated under `@flow`) inside `stop_streams_when_interrupted`."""

    @functools.wraps(body)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        with stop_streams_when_interrupted():
            return body(*args, **kwargs)

    # Prefect reads the parameters' types from the wrapper: give it resolved ones,
    # since string annotations would be looked up in this module.
    run.__annotations__ = typing.get_type_hints(body, include_extras=True)
    # typeshed does not declare __signature__ on functions; inspect honours it.
    run.__signature__ = inspect.signature(body, eval_str=True)  # type: ignore[attr-defined]
    return run
