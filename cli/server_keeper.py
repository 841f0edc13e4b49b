"""The local Prefect server's keeper: start it, record it, stop it once idle (cli/local_server.py).

Run by the first flow command without a configured server, in a session of
its own, as `python -m cli.server_keeper --home H --idle S --budget B`. It
starts `prefect server start` on a free loopback port with a basic-auth string
of its own, writes the record once the server answers, then checks every few
seconds: when no command holds the users lock and the last one started `--idle`
seconds ago, it removes the record and stops the server, under the lock the
commands take, so none is handed a server that is stopping. The server dies
with its keeper (PR_SET_PDEATHSIG), and the keeper stops the server on SIGTERM.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import secrets
import signal
import sys
import time
from pathlib import Path

from cli.flow_run import LocalServer
from cli.local_server import (
    LOCK,
    USERS,
    Record,
    ServerDidNotStart,
    locked,
    remove_record,
    write_record,
)

AUTH_USER = "zfs-offsite"


def idle_for(home: Path, last_busy: float) -> float:
    """Seconds since a command last used the server (started, or seen holding USERS)."""
    try:
        started = (home / USERS).stat().st_mtime
    except FileNotFoundError:
        started = 0.0
    return time.time() - max(last_busy, started)


def stop_if_idle(home: Path, server: LocalServer, idle: int, last_busy: float) -> float | None:
    """None once stopped; else when the server was last seen in use."""
    with locked(home / LOCK), (home / USERS).open("ab") as users:
        try:
            fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return time.time()  # a command is running
        if idle_for(home, last_busy) < idle:
            return last_busy
        remove_record(home, os.getpid())
        server.stop()
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--idle", type=int, required=True)
    parser.add_argument("--budget", type=int, required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # atexit then stops the server
    auth = f"{AUTH_USER}:{secrets.token_urlsafe(24)}"
    try:
        server = LocalServer.start(
            args.budget, extra_env={"PREFECT_SERVER_API_AUTH_STRING": auth}, bound_to_parent=True
        )
    except ServerDidNotStart as exc:
        print(exc, file=sys.stderr)
        return 1
    write_record(args.home, Record(os.getpid(), server.process.pid, server.port, auth, args.idle))
    last_busy = time.time()
    tick = max(0.5, min(10.0, args.idle / 4))
    try:
        while True:
            time.sleep(tick)
            if server.process.poll() is not None:
                return 1  # it died: the next command starts another
            seen = stop_if_idle(args.home, server, args.idle, last_busy)
            if seen is None:
                return 0
            last_busy = seen
    finally:
        remove_record(args.home, os.getpid())


if __name__ == "__main__":
    sys.exit(main())
