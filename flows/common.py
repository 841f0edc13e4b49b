"""What every flow needs: a failed state's one-line error, bounded fan-out, clean stops."""

from __future__ import annotations

import functools
import inspect
import logging
import re
import signal
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo

from prefect.futures import PrefectFuture, as_completed
from prefect.states import State
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows.schedules import TIMEZONE
from zfs_offsite import cancel
from zfs_offsite.archive.names import check_member_name
from zfs_offsite.connect import host_label
from zfs_offsite.errors import ConfigError, ZfsOffsiteError
from zfs_offsite.jobs.history import attempt_tags
from zfs_offsite.jobs.report import slug
from zfs_offsite.settings import load_settings

WORKER_CAP = 16  # threads a flow's task runner may use; settings.max_parallel limits streams


def bounded_task_runner() -> TaskRunner[PrefectFuture[Any]]:
    """A thread pool of WORKER_CAP threads: Prefect's default pool is unbounded."""
    # The cast: @flow types task_runner invariantly in the future type, and a thread
    # pool's futures are a subclass of PrefectFuture.
    return typing.cast(
        "TaskRunner[PrefectFuture[Any]]", ThreadPoolTaskRunner(max_workers=WORKER_CAP)
    )


T = TypeVar("T")
P = ParamSpec("P")

# Names and times in the history are those of the schedule's timezone (the
# deployments' default), not the worker host's clock.
# The names Prefect gives a run nobody named (`crimson-fox`): the template replaces them.
GENERATED_NAME = re.compile(r"^[a-z]+-[a-z]+$")
# Prefect's words before a failed run's own message.
PREFECT_PREFIX = re.compile(r"^Flow run encountered an exception: \w+: ")
DRY_RUN_TAG = "dry-run"
PARTIAL_TAG = "partial"


def run_suffix(parameters: Mapping[str, Any]) -> str:
    """`-dry-run` and `-members-alice-bob`: a run that is not a whole real night says so."""
    suffix = "-dry-run" if parameters.get("dry_run") else ""
    members = parameters.get("members") or []
    if members:
        suffix += "-" + slug("members", *sorted(members))
    return suffix


def run_tags(parameters: Mapping[str, Any]) -> list[str]:
    """Tags of a dry run (`dry-run`) and of a run over some members only (`partial`)."""
    tags = [DRY_RUN_TAG] if parameters.get("dry_run") else []
    return tags + ([PARTIAL_TAG] if parameters.get("members") else [])


def schedule_timezone(deployment_id: object) -> str:
    """The timezone of the deployment's first schedule; TIMEZONE otherwise."""
    if deployment_id is None:
        return TIMEZONE
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment(UUID(str(deployment_id)))
    except Exception:  # a name is no reason to fail the run
        return TIMEZONE
    for schedule in deployment.schedules or []:
        zone = getattr(schedule.schedule, "timezone", None)
        if zone:
            return str(zone)
    return TIMEZONE


def kept_name(run: Any) -> str | None:
    """The run's current name if it must stay: a retried run's, or one a user chose."""
    name = getattr(run, "name", None)
    if not name:
        return None
    if (getattr(run, "run_count", 0) or 0) > 0 or not GENERATED_NAME.match(name):
        return str(name)
    return None


def dated_run_name(job: str) -> Callable[[], str]:
    """A `flow_run_name` callable: `<job>-<host>-<YYYY-MM-DD-HHMM>[-dry-run][-members-…]`.

    The time is the run's scheduled start in the schedule's timezone, so a
    night keeps its time however late a worker picks it up. Prefect calls this
    again on a UI Retry: a run that has run before (or that a user named in the
    Custom run form) keeps its name.
    """

    def name() -> str:
        from prefect.context import FlowRunContext

        context = FlowRunContext.get()
        run = context.flow_run if context else None
        kept = kept_name(run)
        if kept is not None:
            return kept
        try:
            host = host_label(load_settings())
        except ZfsOffsiteError:
            host = "unconfigured"
        when = (run.expected_start_time if run else None) or datetime.now(UTC)
        zone = ZoneInfo(schedule_timezone(run.deployment_id if run else None))
        suffix = run_suffix((context.parameters or {}) if context else {})
        return f"{job}-{host}-{when.astimezone(zone):%Y-%m-%d-%H%M}{suffix}"

    return name


def label_run(parameters: Mapping[str, Any]) -> list[str]:
    """Add `run_tags` to the running flow run's tags (shown and filterable in the UI).

    A run that runs again (a UI Retry: same run, `run_count` 2) also gets
    `retry` and `attempt-<n>`, so the runs list tells it from a night that
    was green at once. Those two mark the flow run only (the returned tags
    go on its task runs too).
    """
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    tags = run_tags(parameters)
    marks = tags + attempt_tags(flow_run.run_count or 1)
    if marks and flow_run.id:
        current = [t for t in flow_run.tags or [] if not t.startswith("attempt-")]
        with get_client(sync_client=True) as client:
            client.update_flow_run(flow_run.id, tags=sorted(set(current) | set(marks)))
    return tags


def earlier_failures() -> list[str]:
    """The messages of this flow run's earlier attempts that failed (a UI Retry keeps them)."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    if not flow_run.id or (flow_run.run_count or 1) < 2:
        return []
    with get_client(sync_client=True) as client:
        states = client.read_flow_run_states(flow_run.id)
    return [
        PREFECT_PREFIX.sub("", s.message or "") or s.name or "failed"
        for s in sorted(states, key=lambda s: s.timestamp)
        if s.is_failed() or s.is_crashed()
    ]


@dataclass(frozen=True)
class SendLimit:
    """A global concurrency limit that exists on the server: its name and its slots."""

    name: str
    slots: int


def optional_limit(
    name: str, logger: logging.Logger | logging.LoggerAdapter[Any]
) -> SendLimit | None:
    """The limit `name` if it exists; else say once, at INFO, it is not used.

    `concurrency(name, strict=False)` warns on every acquisition of a missing
    limit; checking once per run keeps a "warnings and above" view clean.
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            found = client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        logger.info("no concurrency limit %s on the server: sends are limited per run only", name)
        return None
    return SendLimit(name, found.limit)


@contextmanager
def send_slots(
    limit: SendLimit | None, streams: int, logger: logging.Logger | logging.LoggerAdapter[Any]
) -> Iterator[int]:
    """Hold slots of the host's send limit while a run streams; yields the streams it may run.

    One acquisition per run, not per upload: acquiring and releasing a slot
    (a lease) per member cost about a second of waiting each on a busy
    server (issue 14). The run holds min(`streams`, the limit's slots) and
    runs that many streams at once, so sends from the host across runs stay
    within the limit; another run waits for this one's uploads to end.
    `streams` 0 (nothing to send) holds nothing.
    """
    from prefect.concurrency.sync import concurrency

    if limit is None or streams < 1:
        yield max(streams, 1)
        return
    held = max(1, min(streams, limit.slots))
    logger.info("holding %d slot(s) of concurrency limit %s for this run's sends", held, limit.name)
    with concurrency(limit.name, occupy=held):
        yield held


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
    run.__annotations__ = typing.get_type_hints(body, include_extras=True)
    # typeshed does not declare __signature__ on functions; inspect honours it.
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


def checked_members(wanted: list[str]) -> list[str]:
    """The `members` parameter, each name checked by the one member-name rule (ConfigError)."""
    return [check_member_name(name, "parameter members:") for name in wanted]


def only_known(names: list[str], wanted: list[str], what: str) -> list[str]:
    """`wanted` out of `names` (all if empty); a name that does not exist is a ConfigError."""
    if not wanted:
        return names
    checked_members(wanted)
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise ConfigError(f"parameter members: no {what} named {', '.join(unknown)}")
    return [n for n in names if n in wanted]
