"""The local Prefect server that outlives one command: started by the first, reused by the next.

Without a configured server a flow command still needs one to record its run,
and `prefect server start` takes 10-25 s on a busy 2-core machine: paid by
every command, that was most of a no-change backup. So the first command
starts the server under a keeper process (`cli/server_keeper.py`) that stops
it after IDLE_ENV seconds without a command, and later commands find it
through a record beside its database, under PREFECT_HOME (the user's Prefect
state; `~/.prefect` by default):

- RECORD: the keeper's and the server's pids, the loopback port, and the
  basic-auth string the server demands (mode 0600: another local user cannot
  read or write this user's runs through the port).
- LOCK: held exclusively while a command finds or starts the server, and while
  the keeper decides to stop it: two commands at once start one server, and
  none is handed a server that is stopping.
- USERS: every command holds it shared for its whole life (the kernel drops
  the hold when the process ends, however it ends); its mtime is the last
  command's start. The keeper stops only when nobody holds it and that time
  is IDLE_ENV seconds old.

A record whose keeper is gone, is another program, or does not answer is
stale: its server is stopped if it is still ours, the record replaced.
IDLE_ENV=0 keeps the old way, a server per command stopped when it exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from cli import exit_codes, output

IDLE_ENV = "OFFSITE_LOCAL_SERVER_IDLE"
IDLE_DEFAULT = 600  # seconds without a command before the local server stops
IDLE_MAX = 7 * 24 * 3600
RECORD = "zfs-offsite-server.json"
LOCK = "zfs-offsite-server.lock"
USERS = "zfs-offsite-server.users"
KEEPER_MODULE = "cli.server_keeper"
STOP_GRACE = 15.0  # seconds from SIGTERM to SIGKILL of a stale keeper


class ServerDidNotStart(Exception):
    """The local server exited, or did not answer its health check within the budget."""


def healthy(url: str, timeout: float) -> bool:
    """Whether `url` answers 200, asked directly: a proxy setting must not route loopback."""
    import http.client
    import urllib.request

    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with direct.open(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (OSError, http.client.HTTPException):  # refused while it starts, reset, timed out
        return False


def idle_seconds() -> int:
    """IDLE_ENV in whole seconds (0: stop with the command), or exit 2 naming it."""
    raw = os.environ.get(IDLE_ENV, "").strip()
    if not raw:
        return IDLE_DEFAULT
    try:
        idle = int(raw) if len(raw) <= 9 else -1
    except ValueError:
        idle = -1
    if not 0 <= idle <= IDLE_MAX:
        shown = raw if len(raw) <= 20 else raw[:17] + "..."
        output.fail(
            f"{IDLE_ENV}={shown}: must be whole seconds from 0 (a server per command) "
            f"to {IDLE_MAX}",
            exit_codes.USAGE,
        )
    return idle


def idle_words(idle: int) -> str:
    """`10 min` or `45 s`."""
    return f"{idle // 60} min" if idle >= 60 and idle % 60 == 0 else f"{idle} s"


@dataclass(frozen=True)
class Record:
    """The running local server, as its keeper wrote it once the server answered."""

    keeper_pid: int
    server_pid: int
    port: int
    auth: str
    idle: int = IDLE_DEFAULT  # the keeper's: the first command's setting holds for its life

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"


def read_record(home: Path) -> Record | None:
    """The record under `home`, or None if there is none or it is not one (a torn write)."""
    try:
        data = json.loads((home / RECORD).read_text(encoding="utf-8"))
        return Record(
            int(data["keeper_pid"]),
            int(data["server_pid"]),
            int(data["port"]),
            str(data["auth"]),
            int(data.get("idle", IDLE_DEFAULT)),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_record(home: Path, record: Record) -> None:
    """Written whole (a temporary file renamed over it), readable by its owner only."""
    temporary = home / f".{RECORD}.{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(asdict(record), handle)
    temporary.replace(home / RECORD)


def remove_record(home: Path, keeper_pid: int) -> None:
    """Remove the record if it still names `keeper_pid` (never a newer keeper's)."""
    record = read_record(home)
    if record is not None and record.keeper_pid == keeper_pid:
        (home / RECORD).unlink(missing_ok=True)


@contextlib.contextmanager
def locked(path: Path, how: int = fcntl.LOCK_EX) -> Iterator[IO[bytes]]:
    """`path` opened and flock()ed for the block."""
    with path.open("ab") as handle:
        fcntl.flock(handle, how)
        yield handle


def command_line(pid: int) -> list[str]:
    """The process's argv, or [] if there is no such process (or it is not ours to read)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")


def is_keeper(pid: int, home: Path) -> bool:
    """Whether `pid` is a keeper of this PREFECT_HOME's server (a reused pid is not)."""
    argv = command_line(pid)
    return KEEPER_MODULE in argv and str(home) in argv


def is_server(pid: int, port: int) -> bool:
    """Whether `pid` is a `prefect server start` on `port`."""
    argv = command_line(pid)
    return "server" in argv and "start" in argv and str(port) in argv


_users: IO[bytes] | None = None  # held shared until this process ends


def find_or_start(home: Path, budget: int, idle: int, starting: Callable[[], None]) -> Record:
    """The live local server under `home`, or one started now (`starting` is called first).

    Raises ServerDidNotStart if a new server did not answer within `budget` seconds.
    """
    global _users
    home.mkdir(parents=True, exist_ok=True)
    with locked(home / LOCK):
        record = read_record(home)
        if record is None or not (
            is_keeper(record.keeper_pid, home) and healthy(f"{record.api_url}/health", timeout=5)
        ):
            if record is not None or (home / RECORD).exists():
                clear_stale(home, record)
            starting()
            record = start_keeper(home, budget, idle)
        if _users is None:
            _users = (home / USERS).open("ab")
            fcntl.flock(_users, fcntl.LOCK_SH)
        os.utime(home / USERS)
    return record


def clear_stale(home: Path, record: Record | None) -> None:
    """A record nobody answers for: stop what is still ours of it, then remove it."""
    if record is not None:
        if is_keeper(record.keeper_pid, home):
            stop_process_group(record.keeper_pid)
        if is_server(record.server_pid, record.port):
            stop_process_group(record.server_pid)
    (home / RECORD).unlink(missing_ok=True)


def stop_process_group(pid: int) -> None:
    """SIGTERM to the group `pid` leads, SIGKILL if it is still there after STOP_GRACE."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + STOP_GRACE
        while time.monotonic() < deadline:
            if not command_line(pid) or zombie(pid):
                return
            time.sleep(0.2)


def zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def start_keeper(home: Path, budget: int, idle: int) -> Record:
    """Start a keeper in a session of its own; its record once its server answers."""
    argv = [sys.executable, "-m", KEEPER_MODULE, "--home", str(home)]
    argv += ["--idle", str(idle), "--budget", str(budget)]
    # The keeper and its server outlive this command: none of its settings (an S3 secret
    # among them) is theirs to keep in their environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZFS_OFFSITE_")}
    keeper = subprocess.Popen(
        argv,
        env=env,
        cwd="/",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C on the first command must not stop it
    )
    deadline = time.monotonic() + budget + 30  # the keeper's own import, then its budget
    while time.monotonic() < deadline:
        record = read_record(home)
        if record is not None and record.keeper_pid == keeper.pid:
            return record
        if keeper.poll() is not None:
            raise ServerDidNotStart(
                f"the local server's keeper exited with code {keeper.returncode}; "
                f"the server's output: {home / 'zfs-offsite-server.log'}"
            )
        time.sleep(0.2)
    stop_process_group(keeper.pid)
    raise ServerDidNotStart(f"no local server answered within {budget} s")


def stop_recorded(home: Path) -> bool:
    """Stop the local server recorded under `home` (tests, benches); whether there was one."""
    record = read_record(home)
    if record is None:
        return False
    with locked(home / LOCK):
        clear_stale(home, record)
    return True
