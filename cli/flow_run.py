"""Running a flow from the shell: which Prefect server, its start-up budget, quiet logs.

Only the commands that run a flow come here; `plan`, `status`, `config`,
`--help` and `--version` never import Prefect. With a server named
(`PREFECT_API_URL`, or the host's /etc/default/zfs-offsite: server_config.py) the
run lands in that server's history beside the nightly runs; otherwise a local
`prefect server start` on 127.0.0.1, started by the first command and reused
by later ones until idle (local_server.py; OFFSITE_LOCAL_SERVER_IDLE=0: one per
command), with a budget that holds on a busy 2-core machine (Prefect's own
default of 20 s does not).
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli import exit_codes, local_server, output
from cli.local_server import ServerDidNotStart, healthy
from zfs_offsite.errors import ConfigError

STARTUP_ENV = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
STARTUP_DEFAULT = 180  # seconds; a cold first start (migrations) took >20 s under load
STARTUP_MAX = 3600  # an hour: past it a hung start is not waited for
CONSOLE_LEVEL_ENV = "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"
STARTING = "starting local Prefect server… (set PREFECT_API_URL to use your server)"
STARTING_SHARED = (
    "starting a local Prefect server… (first command only: later ones reuse it until it has "
    "been idle {idle}; set PREFECT_API_URL to use your server)"
)
REUSING = "local Prefect server: {url} (keeper pid {pid}; it stops after {idle} idle)"
SERVER_LOG = "zfs-offsite-server.log"  # under PREFECT_HOME: the local server's output
STOP_GRACE = 10  # seconds from SIGTERM to SIGKILL when the command ends
PORT_TRIES = 3  # another process may take the free port before the server binds it


def startup_budget() -> int:
    """The local server's start-up budget: the user's setting, else STARTUP_DEFAULT."""
    raw = os.environ.get(STARTUP_ENV, "").strip()
    if not raw:
        return STARTUP_DEFAULT
    try:
        budget = int(raw) if len(raw) <= 9 else 0  # more digits is past any wait
    except ValueError:
        budget = 0
    if not 1 <= budget <= STARTUP_MAX:
        shown = raw if len(raw) <= 20 else raw[:17] + "..."
        output.fail(
            f"{STARTUP_ENV}={shown}: must be whole seconds from 1 to {STARTUP_MAX}",
            exit_codes.USAGE,
        )
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

    from cli.server_config import choose_server, shown_url

    choice = choose_server()
    if choice.problem:
        output.info(f"note: {choice.problem}: its PREFECT_API_URL is not used")
    url = PREFECT_API_URL.value()
    if url:
        output.info(choice.line)
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            problem = client.api_healthcheck()
            refused = refused_status(client) if problem is None else None
        if problem is not None:
            output.fail(
                f"cannot reach the Prefect server at {shown_url(url)} "
                f"(PREFECT_API_URL from {choice.origin}): "
                f"{output.one_line(str(problem)) or type(problem).__name__}",
                exit_codes.PREFECT_UNAVAILABLE,
            )
        if refused is not None:
            output.fail(
                f"the Prefect server at {shown_url(url)} refused this command (HTTP {refused}): "
                "set PREFECT_API_AUTH_STRING to its user:password (the server's "
                f"PREFECT_SERVER_API_AUTH_STRING) where PREFECT_API_URL is set ({choice.origin})",
                exit_codes.PREFECT_UNAVAILABLE,
            )
        _server_ready = True
        return
    if not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        output.fail(
            "no Prefect server: set PREFECT_API_URL, or PREFECT_SERVER_EPHEMERAL_ENABLED=true",
            exit_codes.PREFECT_UNAVAILABLE,
        )
    budget = startup_budget()
    idle = local_server.idle_seconds()
    try:
        if idle:
            api_url, auth = shared_server(budget, idle)
        else:
            output.info(STARTING)
            server = LocalServer.start(budget)
            api_url, auth = server.api_url, ""
            if output.verbosity.verbose:
                output.info(f"local Prefect server at {api_url}, its output in {server.log}")
    except ServerDidNotStart as exc:
        if output.verbosity.verbose:
            output.error(str(exc))
        output.fail(
            f"the local Prefect server did not start within {budget} s: raise {STARTUP_ENV} "
            "(e.g. 600) or set PREFECT_API_URL to a running server",
            exit_codes.PREFECT_UNAVAILABLE,
        )
    use_server(api_url, auth)
    _server_ready = True


def shared_server(budget: int, idle: int) -> tuple[str, str]:
    """The local server an earlier command left running, or one started now; URL and auth."""
    from prefect.settings import PREFECT_HOME

    home = Path(PREFECT_HOME.value())
    starting = STARTING_SHARED.format(idle=local_server.idle_words(idle))
    record = local_server.find_or_start(home, budget, idle, lambda: output.info(starting))
    idle_words = local_server.idle_words(record.idle)  # the running keeper's, set by the first
    output.info(REUSING.format(url=record.api_url, pid=record.keeper_pid, idle=idle_words))
    return record.api_url, record.auth


def refused_status(client: Any) -> int | None:
    """401/403 if the server wants credentials this command lacks (its /health never does)."""
    import httpx

    try:
        client.hello()
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code in (401, 403):
            return int(exc.response.status_code)
        raise
    return None


@dataclass
class LocalServer:
    """`prefect server start` on a free loopback port, in a session of its own.

    A terminal's Ctrl-C (and `systemctl stop`) signals the whole process group:
    the server must outlive it so the run can record that its streams stopped.
    It is stopped when the command exits. Its database is Prefect's default
    under PREFECT_HOME, the one a later `prefect server start` shows; its
    output goes to SERVER_LOG beside it, never to the terminal (its banner
    advises a PREFECT_API_URL that is gone once the command ends).
    """

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @classmethod
    def start(
        cls, budget: int, extra_env: dict[str, str] | None = None, bound_to_parent: bool = False
    ) -> LocalServer:
        """A server whose health check answered within `budget` seconds, or ServerDidNotStart.

        `extra_env`: the server's own settings; `bound_to_parent`: it dies with this process.
        """
        deadline = time.monotonic() + budget
        for _ in range(PORT_TRIES):
            server = cls.launch(free_port(), extra_env, bound_to_parent)
            try:
                server.wait_until_healthy(deadline)
                return server
            except ServerDidNotStart:
                server.stop()
                if time.monotonic() >= deadline or not port_taken(server.port):
                    raise
        raise ServerDidNotStart(f"{PORT_TRIES} free ports were taken before the server bound them")

    @classmethod
    def launch(
        cls, port: int, extra_env: dict[str, str] | None = None, bound_to_parent: bool = False
    ) -> LocalServer:
        from prefect.settings import PREFECT_HOME

        # No UI (nobody opens it), no scheduler or late-run marking: like Prefect's own
        # temporary server, it records this command's runs and nothing else.
        argv = [sys.executable, "-m", "prefect", "server", "start", "--no-prompt"]
        argv += ["--host", "127.0.0.1", "--port", str(port)]
        argv += ["--no-ui", "--no-scheduler", "--no-late-runs"]
        # Its log keeps Prefect's default level, whatever the CLI's console shows.
        env = {k: v for k, v in os.environ.items() if k != CONSOLE_LEVEL_ENV} | (extra_env or {})
        log = Path(PREFECT_HOME.value()) / SERVER_LOG
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as sink:  # the child keeps its own descriptor
            process = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent if bound_to_parent else None,
            )
        server = cls(process, port, log)
        atexit.register(server.stop)
        return server

    def wait_until_healthy(self, deadline: float) -> None:
        """Poll `/api/health` until it answers: a busy machine's start takes what it takes."""
        while True:
            code = self.process.poll()
            if code is not None:
                raise ServerDidNotStart(
                    f"`prefect server start` exited with code {code}; its output: {self.log}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServerDidNotStart(
                    f"{self.api_url}/health did not answer in time; the server's output: {self.log}"
                )
            if healthy(f"{self.api_url}/health", timeout=min(5.0, remaining)):
                return
            time.sleep(0.25)

    def stop(self) -> None:
        """SIGTERM to its process group, SIGKILL if it is still there after STOP_GRACE."""
        if self.process.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=STOP_GRACE)
                return
            except subprocess.TimeoutExpired:
                continue
        self.process.wait()


def die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies (Linux's PR_SET_PDEATHSIG)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_taken(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def use_server(api_url: str, auth: str = "") -> None:
    """Point this process's Prefect at `api_url`, in every thread the engine starts.

    `temporary_settings` would hold only for the calling thread: Prefect's log
    and event workers read the process-wide settings and, finding no URL,
    would start a temporary server of their own. So the URL goes into the
    environment, and Prefect re-reads it.
    """
    from prefect.context import refresh_global_settings_context
    from prefect.settings import PREFECT_UI_URL

    if PREFECT_UI_URL.value() is None:
        # The server has no UI and ends with the command: no "View at" link to it, as before.
        os.environ["PREFECT_UI_URL"] = ""
    os.environ["PREFECT_API_URL"] = api_url
    if auth:  # the shared local server's own basic-auth string (cli/local_server.py)
        os.environ["PREFECT_API_AUTH_STRING"] = auth

    refresh_global_settings_context()


CLIENT_LOG = "zfs-offsite-client.log"  # under PREFECT_HOME: Prefect's own client-side errors
# Prefect's loggers whose errors, when the server is gone, are kilobytes per line
# (`EventsWorker failed to process item Event(...)`): a file unless -v.
PREFECT_INTERNAL_LOGGERS = ("prefect._internal",)


def quiet_prefect_internals() -> Path | None:
    """Without -v, Prefect's internal errors go to CLIENT_LOG, not the console; its path.

    A lost server makes Prefect's event and log workers print every event they
    could not send, and `--- Error logging to API ---` (the stdlib's handler
    error report, off with `logging.raiseExceptions`). The CLI says what
    happened in one line instead; the detail stays in the file.
    """
    if output.verbosity.verbose:
        return None
    import logging

    from prefect.settings import PREFECT_HOME

    logging.raiseExceptions = False
    log = Path(PREFECT_HOME.value()) / CLIENT_LOG
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(log, encoding="utf-8")
    except OSError:
        handler, log = logging.NullHandler(), None  # type: ignore[assignment]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in PREFECT_INTERNAL_LOGGERS:
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
            if isinstance(old, logging.FileHandler):  # an earlier run's in this process
                old.close()
        logger.addHandler(handler)
        logger.propagate = False
    return log


def lost_server(exc: BaseException) -> bool:
    """Whether `exc` (or what it came from) is the Prefect API not answering."""
    import httpx

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, httpx.TransportError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def give_up_on_server() -> None:
    """The server is gone: Prefect's workers stop retrying it, so the command ends now.

    At exit Prefect drains its event and log queues, each request retried with
    a back-off of over a minute against a server that will not answer.
    """
    from prefect.context import refresh_global_settings_context

    os.environ["PREFECT_CLIENT_MAX_RETRIES"] = "0"
    refresh_global_settings_context()


@dataclass(frozen=True)
class FlowOutcome:
    """A finished flow run: its return value, or the exception it failed with.

    `server_lost`: the Prefect server stopped answering during the run, so
    Prefect's state of it says nothing about what the core did (`result` is
    the API error).
    """

    result: Any
    failed: bool
    server_lost: bool = False

    @property
    def message(self) -> str:
        return output.one_line(str(self.result)) or "the flow run failed"

    @property
    def exit_code(self) -> int:
        if not self.failed:
            return exit_codes.OK
        if self.server_lost:
            return exit_codes.PREFECT_UNAVAILABLE
        return exit_codes.USAGE if isinstance(self.result, ConfigError) else exit_codes.FAILED

    @property
    def lost_words(self) -> str:
        """E.g. `the Prefect server stopped answering during the run (ConnectError: …)`."""
        error = f"{type(self.result).__name__}: {self.message}"
        return f"the Prefect server stopped answering during the run ({error})"


def run_flow(flow_fn: Callable[..., Any], **parameters: Any) -> FlowOutcome:
    """Run a flow in this process against the server `ensure_server` found or started.

    `parameters` are the flow's own (flat) parameters, as a deployment run passes them.
    A server lost during the run is an outcome (`server_lost`), not an exit: the
    caller says what the core did.
    """
    from cli.signals import Interrupted, interruptible

    ensure_server()
    quiet_prefect_internals()
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
        if lost_server(exc):
            give_up_on_server()
            if output.verbosity.verbose:
                output.error(f"{type(exc).__name__}: {exc}")
            return FlowOutcome(exc, failed=True, server_lost=True)
        if output.verbosity.verbose:
            raise
        output.fail(f"{type(exc).__name__}: {exc} (-v shows the detail)", exit_codes.FAILED)
    result = state.result(raise_on_failure=False)
    if not state.is_completed() and isinstance(result, BaseException) and lost_server(result):
        give_up_on_server()
        return FlowOutcome(result, failed=True, server_lost=True)
    return FlowOutcome(result, failed=not state.is_completed())


def fail_run(what: str, outcome: FlowOutcome, check: str = "") -> None:
    """A failed run: one line naming the job and the error, and its exit code.

    A lost server: the command cannot tell what the run finished, and says so
    rather than claim a success or a failure; `check` says where to look.
    """
    if outcome.server_lost:
        output.fail(
            f"{what}: {outcome.lost_words}; its run record may be incomplete and what the run "
            "finished is not known here" + (f": {check}" if check else ""),
            outcome.exit_code,
        )
    output.fail(f"{what} failed: {outcome.message}", outcome.exit_code)
