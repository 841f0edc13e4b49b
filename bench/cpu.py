"""CPU accounting for the benchmarks: processes, their waited-for children, daemons.

A finished child's CPU reaches its parent's `cutime`/`cstime` (and
`getrusage(RUSAGE_CHILDREN)`) only once the parent has waited for it, so a
measured command is always run to completion under a parent that waits.
zfs-fuse does the work of `zfs send` in its daemon, not in the `zfs` client:
its CPU is read from /proc before and after, and counted for every path alike.
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int, *, children: bool = False) -> float:
    """CPU seconds (user + system) of a live process; with `children`, of its reaped ones."""
    return _stat_cpu(Path(f"/proc/{pid}/stat"), children=children)


def _stat_cpu(stat: Path, *, children: bool = False) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    # After "pid (comm)": state is fields[0], utime/stime fields[11:13], cutime/cstime [13:15].
    first = 13 if children else 11
    return (int(fields[first]) + int(fields[first + 1])) / TICK


def zfs_fuse_pid() -> int | None:
    """The zfs-fuse daemon's pid (read only: the benchmark never signals it)."""
    done = subprocess.run(["pgrep", "-x", "zfs-fuse"], capture_output=True, text=True)
    pids = [int(p) for p in done.stdout.split()]
    return pids[0] if pids else None


def rusage_cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def live_children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(p) for p in text)
    return found


def settle(pid: int, timeout: float = 10.0) -> None:
    """Wait until `pid` has reaped every child (sshd's per-connection processes)."""
    deadline = time.monotonic() + timeout
    while live_children(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


@dataclass
class ThreadWatch:
    """Polls the CPU of every thread of this process and its descendants (the profile).

    Threads that end between polls lose at most one interval; the poll is
    cheap (a few /proc reads every `interval`).
    """

    interval: float = 0.2
    seen: dict[tuple[int, int], tuple[str, float]] = field(default_factory=dict)
    baseline: dict[tuple[int, int], float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._poll()  # what threads alive now had spent before (imports) is not counted
        self.baseline = {key: cpu for key, (_, cpu) in self.seen.items()}
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, float]:
        self._stop.set()
        if self._thread:
            self._thread.join()
        totals: dict[str, float] = {}
        for key, (name, seconds) in self.seen.items():
            spent = seconds - self.baseline.get(key, 0.0)
            totals[name] = totals.get(name, 0.0) + spent
        return dict(sorted(totals.items(), key=lambda kv: -kv[1]))

    def _names(self) -> dict[int, str]:
        return {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}

    def _poll(self) -> None:
        names = self._names()
        pids = [os.getpid()]
        index = 0
        while index < len(pids):
            with contextlib.suppress(OSError):
                pids.extend(live_children(pids[index]))
            index += 1
        for pid in pids:
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
                tasks = list(Path(f"/proc/{pid}/task").iterdir())
            except OSError:
                continue
            for task in tasks:
                tid = int(task.name)
                try:
                    cpu = _stat_cpu(task / "stat")
                except OSError:
                    continue
                if pid == os.getpid():
                    name = f"python:{names.get(tid, 'thread-' + str(tid))}"
                else:
                    name = comm
                self.seen[(pid, tid)] = (name, cpu)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._poll()
            self._stop.wait(self.interval)
        self._poll()
