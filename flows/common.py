"""What every flow needs: a failed state's one-line error, and bounded fan-out."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from prefect.futures import PrefectFuture
from prefect.states import State

from zfs_offsite.backup import source_host
from zfs_offsite.errors import ConfigError, ZfsOffsiteError
from zfs_offsite.settings import load_settings

WORKER_CAP = 16  # threads a flow's task runner may use; settings.max_parallel limits streams
T = TypeVar("T")


def dated_run_name(job: str) -> Callable[[], str]:
    """A `flow_run_name` callable: `<job>-<host>-<date>`, readable in the flow-run history."""

    def name() -> str:
        try:
            host = source_host(load_settings())
        except ZfsOffsiteError:
            host = "unconfigured"
        return f"{job}-{host}-{datetime.now():%Y-%m-%d-%H%M}"

    return name


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
