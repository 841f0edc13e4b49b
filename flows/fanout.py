"""Fan-out: a flow's tasks run a bounded number at a time, and are waited for in order.

Prefect's default thread pool is unbounded and `.submit` never waits; a night of
many members must run at most `max_parallel` streams at once, and the flow must
collect each member's result or one-line error without one failure stopping the rest.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows.failures import error_of

WORKER_CAP = 16  # threads a flow's task runner may use; settings.max_parallel limits streams


def bounded_task_runner() -> TaskRunner[PrefectFuture[Any]]:
    """A thread pool of WORKER_CAP threads: Prefect's default pool is unbounded."""
    # The cast: @flow types task_runner invariantly in the future type, and a thread
    # pool's futures are a subclass of PrefectFuture.
    return typing.cast(
        "TaskRunner[PrefectFuture[Any]]", ThreadPoolTaskRunner(max_workers=WORKER_CAP)
    )


T = TypeVar("T")


def submit_bounded(
    items: Iterable[T], submit: Callable[[T], PrefectFuture[Any]], limit: int
) -> list[PrefectFuture[Any]]:
    """Submit tasks keeping at most `limit` running, so only that many streams run at once.

    Waiting here is plain Python: a task's graph edges come only from what
    `submit` passes it.
    """
    futures: list[PrefectFuture[Any]] = []
    running: list[PrefectFuture[Any]] = []
    for item in items:
        if len(running) >= limit:
            finished = next(as_completed(running))
            running = [f for f in running if f is not finished]
        future = submit(item)
        futures.append(future)
        running.append(future)
    return futures


def settle(items: list[T], futures: list[PrefectFuture[Any]]) -> list[tuple[T, Any, str | None]]:
    """Wait for every future; (item, result or None, error or None) in submission order."""
    settled = []
    for item, future in zip(items, futures, strict=True):
        future.wait()
        error = error_of(future.state)
        settled.append((item, future.result() if error is None else None, error))
    return settled
