"""The one-process setup: serve every zfs-offsite deployment from this process.

The schedules are those of flows/schedules.py, which `prefect.yaml` repeats
(a test keeps the two in step), so a host can move between `zfs-offsite serve` and
a worker without changing when anything runs. The served deployments are named
`<job>-<host>-served`, never the `<job>-<host>` that `prefect.yaml` deploys: both
can live on one server without overwriting each other (a served copy has no pull
step, so a worker handed it would crash).

SIGINT and SIGTERM stop it within seconds with one line: Prefect's own
shutdown would first pause the schedules and, when the temporary server died
with the same Ctrl-C, retry that for over a minute while printing tracebacks.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.schedules import Cron, Schedule

from deployments.naming import host, served_name
from flows.schedules import JOBS, TIMEZONE, Job

if TYPE_CHECKING:
    from prefect import Flow
    from prefect.deployments.runner import RunnerDeployment

STOP_SECONDS = 8.0  # budget for cancelling runs and pausing schedules on stop


def one_at_a_time() -> ConcurrencyLimitConfig:
    """A new run is cancelled while the previous one of the same deployment still runs."""
    return ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)


def served_deployments(
    backup_cron: str | None = None, timezone: str = TIMEZONE, host_name: str | None = None
) -> list[RunnerDeployment]:
    """Every job as a deployment named for serve on this host (`nightly-<host>-served`)."""
    from flows.backup import backup_flow
    from flows.drill import drill_flow
    from flows.prune import prune_flow
    from flows.restore import restore_flow
    from flows.verify import verify_flow

    flows: dict[str, Flow[..., Any]] = {
        "flows/backup.py:backup_flow": backup_flow,
        "flows/drill.py:drill_flow": drill_flow,
        "flows/verify.py:verify_flow": verify_flow,
        "flows/restore.py:restore_flow": restore_flow,
        "flows/prune.py:prune_flow": prune_flow,
    }
    host_name = host_name or host()

    def schedules(job: Job) -> list[Schedule]:
        cron = backup_cron if backup_cron and job.name == "nightly" else job.cron
        return [Cron(cron, timezone)] if cron else []

    # to_deployment is typed for sync and async callers; called from sync code it is the value.
    return [
        cast(
            "RunnerDeployment",
            flows[job.entrypoint].to_deployment(
                name=served_name(job.name, host_name),
                schedules=schedules(job),
                concurrency_limit=one_at_a_time() if job.cron else None,
                tags=["zfs-offsite"],
                description=job.description,
            ),
        )
        for job in JOBS
    ]


def serve_all(backup_cron: str | None = None, timezone: str = TIMEZONE) -> None:
    """Register every job as a deployment and run them from this process until stopped."""
    try:
        ZoneInfo(timezone)
    except (ValueError, ZoneInfoNotFoundError):
        raise SystemExit(f"zfs-offsite serve: --timezone {timezone!r}: unknown time zone") from None
    try:
        deployments = served_deployments(backup_cron, timezone)
    except ValueError as exc:  # a bad OFFSITE_HOST or --cron
        raise SystemExit(f"zfs-offsite serve: {str(exc).splitlines()[0]}") from None
    try:
        asyncio.run(_serve(deployments, sys.stdout))
    except RuntimeError as exc:
        if "ephemeral" not in str(exc):
            raise
        raise SystemExit(
            "zfs-offsite serve: the temporary Prefect server did not start in time; "
            "raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS or set PREFECT_API_URL"
        ) from None


async def _serve(deployments: list[RunnerDeployment], out: TextIO) -> None:
    from prefect.runner import Runner
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[str] = []

    def on_signal(signum: int, _frame: object) -> None:
        # Runs before the loop handles the events the same Ctrl-C caused (a temporary
        # server closing its sockets): silence the runner's connection tracebacks, which
        # say nothing to the user. Printing waits for the loop: a signal handler that
        # writes to stdout while the main thread does raises "reentrant call".
        logging.disable(logging.CRITICAL)
        if not received:
            received.append(signal.Signals(signum).name)
            loop.call_soon_threadsafe(announce_stop)

    def announce_stop() -> None:
        print(f"zfs-offsite serve: {received[0]} received, stopping", file=out, flush=True)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    api_url = PREFECT_API_URL.value()
    if not api_url:
        print(
            "zfs-offsite serve: no PREFECT_API_URL, starting a temporary local Prefect server",
            file=out,
            flush=True,
        )
    # Pausing on stop keeps a central server from scheduling runs nobody executes;
    # a temporary server stops with this process, so there is nothing to pause.
    runner = Runner(name=f"zfs-offsite-serve-{host()}", pause_on_shutdown=bool(api_url))
    for deployment in deployments:
        await runner.aadd_deployment(deployment)
        if stop.is_set():
            return
    # runner.start() installs `handle_sigterm` as the SIGTERM handler when it gets to it.
    # Runner has no public hook for its SIGTERM handler; mypy objects to replacing a method.
    runner.handle_sigterm = on_signal  # type: ignore[method-assign]
    running = asyncio.create_task(runner.start())
    for line in await _start_message(deployments, api_url, PREFECT_UI_URL.value()):
        if received:
            break
        print(line, file=out, flush=True)

    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if running.done():  # the runner ended on its own: an error worth its traceback
        stopping.cancel()
        running.result()
        return
    try:
        async with asyncio.timeout(STOP_SECONDS):
            await runner.astop()
            await running
    except (TimeoutError, Exception, asyncio.CancelledError):
        running.cancel()


def _prefect_command() -> str:
    """`prefect` if the shell finds this environment's, else its full path (a venv's bin)."""
    mine = Path(sys.executable).with_name("prefect")
    found = shutil.which("prefect")
    return "prefect" if found and Path(found).resolve() == mine.resolve() else str(mine)


async def _start_message(
    deployments: list[RunnerDeployment], api_url: str | None, ui_url: str | None
) -> list[str]:
    """One line per deployment with its next run, then hints that work from another shell."""
    from cronsim import CronSim

    names = [f"{d.flow_name}/{d.name}" for d in deployments]
    width = max(len(n) for n in names)
    lines = [f"zfs-offsite serve: {len(deployments)} deployments, stop with Ctrl-C"]
    for name, deployment in zip(names, deployments, strict=True):
        if deployment.schedules:
            schedule = deployment.schedules[0].schedule
            # Every job's schedule is a Cron (schedules.py); the union also has intervals.
            cron, tz = schedule.cron, schedule.timezone  # type: ignore[union-attr]
            # For the message only: Prefect itself schedules the runs from the same cron.
            when = next(CronSim(cron, datetime.now(ZoneInfo(tz or "UTC"))))
            next_run = f"next run {when:%Y-%m-%d %H:%M %Z} ({cron}, {tz})"
        else:
            next_run = "no schedule: runs when started from the UI or the CLI"
        lines.append(f"  {name:<{width}}  {next_run}")
    if api_url:
        lines.append(f"start one now: {_prefect_command()} deployment run '{names[0]}'")
        if ui_url:
            lines.append(f"or from the UI: {ui_url}/deployments")
    else:
        lines.append(
            "runs go to a temporary server only this process reaches: to start or see runs "
            "from elsewhere, run `prefect server start` and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api for both"
        )
    return lines
