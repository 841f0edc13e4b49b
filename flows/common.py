"""What every flow needs: a failed state's one-line error, bounded fan-out, clean stops."""

from __future__ import annotations

import concurrent.futures
import functools
import inspect
import signal
import typing
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from prefect.futures import PrefectFuture
from prefect.states import State

from zfs_offsite import cancel
from zfs_offsite.backup import source_host
from zfs_offsite.errors import ConfigError, ZfsOffsiteError
from zfs_offsite.settings import load_settings

WORKER_CAP = 16  # threads a flow's task runner may use; settings.max_parallel limits streams
T = TypeVar("T")
P = ParamSpec("P")


def dated_run_name(job: str) -> Callable[[], str]:
    """A `flow_run_name` callable: `<job>-<host>-<date>`, readable in the flow-run history."""

    def name() -> str:
        try:
            host = source_host(load_settings())
        except ZfsOffsiteError:
            host = "unconfigured"
        return f"{job}-{host}-{datetime.now():%Y-%m-%d-%H%M}"

    return name


@contextmanager
def stop_streams_when_interrupted() -> Iterator[None]:
    """Ctrl-C, SIGTERM and a Prefect Cancel stop every stream of the run within a second.

    Each of them raises in the flow's main thread (KeyboardInterrupt, or
    Prefect's TerminationSignal from its own SIGTERM handler, which must stay
    installed for a Cancel to end as Cancelled). Seeing it pass, this tells
    the streams running in worker threads to stop (`zfs_offsite.cancel`):
    each removes its partial file and releases its member lock, so the engine
    does not wait for uploads to finish before the run ends.
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
    run.__annotations__ = typing.get_type_hints(body)
    run.__signature__ = inspect.signature(body, eval_str=True)  # type: ignore[attr-defined]
    return run


def error_of(state: State[Any]) -> str | None:
    """The one-line error of a failed state, None if it completed.

    Every line of the message is kept, joined: zfs puts the line naming the
    problem first and the one saying what to do last.
    """
    if state.is_completed():
        return None
    try:
        state.result()
    except Exception as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        return "; ".join(lines) or type(exc).__name__
    return state.message or state.name


def submit_bounded(
    items: Iterable[T], submit: Callable[[T], PrefectFuture[Any]], limit: int
) -> list[PrefectFuture[Any]]:
    """Submit tasks keeping at most `limit` running, so only that many streams run at once."""
    futures: list[PrefectFuture[Any]] = []
    for item in items:
        running = [f.wrapped_future for f in futures if not f.wrapped_future.done()]  # type: ignore[attr-defined]
        if len(running) >= limit:
            concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
        futures.append(submit(item))
    return futures


def settle(items: list[T], futures: list[PrefectFuture[Any]]) -> list[tuple[T, Any, str | None]]:
    """Wait for every future; (item, result or None, error or None) in submission order."""
    settled = []
    for item, future in zip(items, futures, strict=True):
        future.wait()
        error = error_of(future.state)
        settled.append((item, future.result() if error is None else None, error))
    return settled


def only_known(names: list[str], wanted: list[str], what: str) -> list[str]:
    """`wanted` out of `names` (all if empty); a name that does not exist is a ConfigError."""
    if not wanted:
        return names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise ConfigError(f"parameter members: no {what} named {', '.join(unknown)}")
    return [n for n in names if n in wanted]


class MembersFailed(ZfsOffsiteError):
    """Some members failed; the others were done. The run ends Failed with this."""
