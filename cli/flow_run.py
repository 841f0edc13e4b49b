"""Running a flow from the shell: which Prefect server, its start-up budget, quiet logs.

Only the commands that run a flow come here; `plan`, `status`, `config`,
`--help` and `--version` never import Prefect. With `PREFECT_API_URL` set the
run lands in that server's history beside the nightly runs; otherwise Prefect's
temporary local server is started once per process, with a budget that holds
on a busy 2-core machine (Prefect's own default of 20 s does not).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cli import exit_codes, output
from zfs_offsite.errors import ConfigError

STARTUP_ENV = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
STARTUP_DEFAULT = 180  # seconds; a cold first start (migrations) took >20 s under load
CONSOLE_LEVEL_ENV = "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"
STARTING = "starting local Prefect server… (set PREFECT_API_URL to use your server)"


def startup_budget() -> int:
    """The temporary server's start-up budget: the user's setting, else STARTUP_DEFAULT."""
    raw = os.environ.get(STARTUP_ENV, "").strip()
    if not raw:
        return STARTUP_DEFAULT
    try:
        budget = int(raw)
    except ValueError:
        budget = 0
    if budget < 1:
        output.fail(f"{STARTUP_ENV}={raw}: must be whole seconds, 1 or more", exit_codes.USAGE)
    return budget


def prepare_prefect() -> None:
    """Before Prefect is imported: the start-up budget, and its console logs off unless -v.

    Prefect prints every failed task and flow run with a traceback; the CLI
    prints one line instead. The logs still go to the Prefect server's history.
    """
    os.environ[STARTUP_ENV] = str(startup_budget())
    if not output.verbosity.verbose:
        os.environ.setdefault(CONSOLE_LEVEL_ENV, "CRITICAL")


_server_ready = False


def ensure_server() -> None:
    """Reach `PREFECT_API_URL`, or start the local server; else one line and exit 3.

    Commands call it before drawing progress bars, so its lines stand alone.
    """
    global _server_ready
    if _server_ready:
        return
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    url = PREFECT_API_URL.value()
    if url:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            problem = client.api_healthcheck()
        if problem is not None:
            output.fail(
                f"cannot reach the Prefect server at {url} (PREFECT_API_URL): "
                f"{output.one_line(str(problem)) or type(problem).__name__}",
                exit_codes.PREFECT_UNAVAILABLE,
            )
        _server_ready = True
        return
    if not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        output.fail(
            "no Prefect server: set PREFECT_API_URL, or PREFECT_SERVER_EPHEMERAL_ENABLED=true",
            exit_codes.PREFECT_UNAVAILABLE,
        )
    server = _detached_server()
    if server.running:
        _server_ready = True
        return
    budget = startup_budget()
    output.info(STARTING)
    try:
        server.start(timeout=budget)
    except Exception as exc:  # Prefect raises RuntimeError with the server's whole output
        if output.verbosity.verbose:
            output.error(str(exc))
        output.fail(
            f"the local Prefect server did not start within {budget} s: raise {STARTUP_ENV} "
            "(e.g. 600) or set PREFECT_API_URL to a running server",
            exit_codes.PREFECT_UNAVAILABLE,
        )
    _server_ready = True


def _detached_server() -> Any:
    """Prefect's temporary server, started in a session of its own.

    A terminal's Ctrl-C goes to the whole process group: the server must
    outlive it so the run can record that its streams stopped. Prefect's
    engine later asks for the same (singleton) server and finds this one.
    """
    import functools
    import subprocess

    from prefect.server.api import server as prefect_server

    class DetachedServer(prefect_server.SubprocessASGIServer):
        def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
            detached = functools.partial(subprocess.Popen, start_new_session=True)
            original = prefect_server.subprocess.Popen
            prefect_server.subprocess.Popen = detached  # type: ignore[misc]
            try:
                return super()._run_uvicorn_command()
            finally:
                prefect_server.subprocess.Popen = original  # type: ignore[misc]

    return DetachedServer()


@dataclass(frozen=True)
class FlowOutcome:
    """A finished flow run: its return value, or the exception it failed with."""

    result: Any
    failed: bool

    @property
    def message(self) -> str:
        return output.one_line(str(self.result)) or "the flow run failed"

    @property
    def exit_code(self) -> int:
        if not self.failed:
            return exit_codes.OK
        return exit_codes.USAGE if isinstance(self.result, ConfigError) else exit_codes.FAILED


def run_flow(flow_fn: Callable[..., Any], **parameters: Any) -> FlowOutcome:
    """Run a flow in this process against the server `ensure_server` found or started.

    `parameters` are the flow's own (flat) parameters, as a deployment run passes them.
    """
    from cli.signals import Interrupted, interruptible

    ensure_server()
    try:
        with interruptible():
            state = flow_fn(**parameters, return_state=True)
    except Interrupted as stop:
        output.fail(
            f"interrupted by {stop.reason}: running streams were stopped, their partial files "
            "removed and member locks released; nothing half-written was kept",
            stop.exit_code,
        )
    except Exception as exc:
        if output.verbosity.verbose:
            raise
        import httpx

        code = (
            exit_codes.PREFECT_UNAVAILABLE
            if isinstance(exc, httpx.TransportError)
            else exit_codes.FAILED
        )
        output.fail(f"{type(exc).__name__}: {exc} (-v shows the detail)", code)
    result = state.result(raise_on_failure=False)
    return FlowOutcome(result, failed=not state.is_completed())


def fail_run(what: str, outcome: FlowOutcome) -> None:
    """A failed run: one line naming the job and the error, and its exit code."""
    output.fail(f"{what} failed: {outcome.message}", outcome.exit_code)
