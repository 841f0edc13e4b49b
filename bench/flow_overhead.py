"""What the Prefect flow costs on top of the work: changed and no-change nights, side by side.

One run measures, over the same N small members (zfs-fuse datasets, local
`file://` target, `max_parallel` 2, a local `prefect server start` like the
CLI's, with a fresh database under the run's own PREFECT_HOME):

(a) core      the core's own backup of N changed members, called directly
              (`jobs.backup.discover_members` + `backup_member`, one after another)
(b) flow      the backup flow over N changed members
(c) quiet     a no-change night of the flow over the N members
(d) no-op     a flow of N no-op tasks (the baseline for (c))

"Changed" means every member has a new snapshot since its last upload (one
`zfs snapshot -r`), so each one plans and sends a small incremental. The
rounds alternate (a) (b) (c) (d); the figures are medians. Targets:
orchestration per changed member ((b) - (a)) / N <= 3x the core's per member,
and (c) <= 1.5x (d). The core runs one member at a time and the flow two, so
a negative orchestration time means the flow's second lane more than paid
for its overhead.

Run as root (1000 members take about an hour; 200 a few minutes):
    .venv/bin/python -m bench.flow_overhead --members 1000 --rounds 1 --send-limit 2
`--profile FILE` writes a cProfile of every thread of one extra changed-night
flow run (pstats format; the top lines are printed).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from tests.support.prefect_server import drain_prefect_workers
from tests.support.services import create_pool, ensure_zfs_fuse, run

SNAPSHOT = "auto-20190806.{minute:04d}-1w"  # a new name per night, in the seed's schema


def make_members(pool: str, count: int) -> None:
    """`count` empty datasets (no mount: zfs-fuse mounts are slow)."""
    for i in range(count):
        run(["zfs", "create", "-o", "mountpoint=none", f"{pool}/elabfs-m{i:04d}"])


class Nights:
    """New snapshots on every member at once: one `zfs snapshot -r` per night."""

    def __init__(self, pool: str) -> None:
        self.pool = pool
        self.minute = 0

    def next(self) -> None:
        self.minute += 1
        run(["zfs", "snapshot", "-r", f"{self.pool}@{SNAPSHOT.format(minute=self.minute)}"])


def core_backup() -> list[str]:
    """(a): what the flow does per member, without Prefect: discover, then plan+send each."""
    from zfs_offsite.connect import open_runner
    from zfs_offsite.jobs.backup import backup_member, discover_members
    from zfs_offsite.settings import load_settings

    settings = load_settings()
    with closing(open_runner(settings)) as runner:
        members = discover_members(settings, runner)
    return [backup_member(settings, m).action.value for m in members]


def noop_flow_of(workers: int) -> Callable[[int], list[int]]:
    """(d): a flow of `n` no-op tasks, on a thread pool the size of the backup flow's."""
    from prefect import flow, task
    from prefect.task_runners import ThreadPoolTaskRunner

    @task
    def noop(i: int) -> int:
        return i

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=workers))
    def noop_flow(n: int) -> list[int]:
        return [f.result() for f in [noop.submit(i) for i in range(n)]]

    return noop_flow


def backup_actions() -> list[str]:
    from flows.backup import backup_flow

    return [o.action for o in backup_flow()]


def timed(settle: float, fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall time of one call, after letting the server finish recording the last one."""
    time.sleep(settle)
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def expect(actions: list[str], wanted: str, n: int, what: str) -> None:
    if actions != [wanted] * n:
        seen = sorted(set(actions))
        sys.exit(f"{what}: expected {n} x {wanted!r}, got {len(actions)} of {seen}")


class ThreadProfiles:
    """cProfile of every thread that runs while enabled (tasks run in worker threads)."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []

    def _start(self, *_: object) -> None:
        # Called once in each new thread; cProfile's own hook then replaces it there.
        profile = cProfile.Profile()
        self.profiles.append(profile)
        profile.enable()

    def __enter__(self) -> ThreadProfiles:
        threading.setprofile(self._start)  # type: ignore[arg-type]
        main = cProfile.Profile()
        self.profiles.append(main)
        main.enable()
        return self

    def __exit__(self, *_: object) -> None:
        threading.setprofile(None)  # type: ignore[arg-type]
        self.profiles[0].disable()

    def dump(self, path: Path) -> str:
        stats = pstats.Stats(self.profiles[0])
        for profile in self.profiles[1:]:
            profile.create_stats()
            stats.add(profile)
        stats.dump_stats(path)
        text = io.StringIO()
        stats.stream = text  # type: ignore[attr-defined]
        stats.sort_stats("cumulative").print_stats(45)
        return text.getvalue()


def create_send_limit(slots: int) -> None:
    """The cross-run send cap the README describes, so each upload acquires and releases it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    from zfs_offsite.connect import source_host
    from zfs_offsite.report.run_report import send_limit_name
    from zfs_offsite.settings import load_settings

    name = send_limit_name(source_host(load_settings()))
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=slots))


def server_db_mb(home: Path) -> float:
    return sum(p.stat().st_size for p in home.glob("*.db*")) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=2, help="max_parallel of the flow")
    parser.add_argument(
        "--settle", type=float, default=10.0, help="seconds to let the server drain its events"
    )
    parser.add_argument("--profile", type=Path, help="write a cProfile of one changed night here")
    parser.add_argument(
        "--send-limit",
        type=int,
        default=0,
        help="create the global concurrency limit zfs-send-<host> with this many slots "
        "(0: none, the flow then looks it up once and sends without it)",
    )
    args = parser.parse_args()
    n = args.members
    # A SIGTERM unwinds like Ctrl-C, so the pool and the server are cleaned up.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    ensure_zfs_fuse()
    work = Path(tempfile.mkdtemp(prefix="zfs-offsite-bench-", dir="/var/tmp"))
    home = work / "prefect"
    # Before Prefect is imported: a fresh server database and result store of the run's own.
    os.environ.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_RESULTS_LOCAL_STORAGE_PATH=str(work / "results"),
        PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL="WARNING",
        ZFS_OFFSITE_TARGET__URL=f"file://{work}/archive",
        ZFS_OFFSITE_MAX_PARALLEL=str(args.parallel),
    )
    os.environ.pop("PREFECT_API_URL", None)
    started = time.perf_counter()
    pool = create_pool(work, prefix="zobench", size_mb=max(512, n))
    server = None
    try:
        os.environ["ZFS_OFFSITE_SOURCE__POOL"] = pool.name
        make_members(pool.name, n)
        nights = Nights(pool.name)
        nights.next()
        expect(core_backup(), "full", n, "the first backup (core)")
        print(f"set up {n} members and their first fulls in {time.perf_counter() - started:.0f} s")

        from cli.flow_run import LocalServer, use_server

        server = LocalServer.start(600)
        use_server(server.api_url)
        if args.send_limit:
            create_send_limit(args.send_limit)
        noop_flow = noop_flow_of(16)
        noop_flow(n)  # warm the server and the imports
        times: dict[str, list[float]] = {"core": [], "flow": [], "quiet": [], "noop": []}
        for _ in range(args.rounds):
            nights.next()
            took, actions = timed(args.settle, core_backup)
            expect(actions, "incremental", n, "core")
            times["core"].append(took)
            nights.next()
            took, actions = timed(args.settle, backup_actions)
            expect(actions, "incremental", n, "flow")
            times["flow"].append(took)
            took, actions = timed(args.settle, backup_actions)
            expect(actions, "up to date", n, "no-change flow")
            times["quiet"].append(took)
            times["noop"].append(timed(args.settle, lambda: noop_flow(n))[0])
        report(n, args, times, server_db_mb(home))
        if args.profile:
            nights.next()
            time.sleep(args.settle)
            with ThreadProfiles() as profiles:
                expect(backup_actions(), "incremental", n, "profiled flow")
            print(profiles.dump(args.profile))
            print(f"profile of every thread: {args.profile}")
    finally:
        if server is not None:
            # Prefect's log and event workers send their last batches at exit; sent now,
            # while the server answers (after its stop they wait out a minute of retries).
            drain_prefect_workers()
            server.stop()
        pool.destroy()
        shutil.rmtree(work, ignore_errors=True)


def report(n: int, args: argparse.Namespace, times: dict[str, list[float]], db_mb: float) -> None:
    med = {k: statistics.median(v) for k, v in times.items()}
    runs = {k: ", ".join(f"{x:.1f}" for x in v) for k, v in times.items()}
    core_each = med["core"] / n
    flow_each = med["flow"] / n
    overhead_each = flow_each - core_each
    limit = f"send limit of {args.send_limit}" if args.send_limit else "no send limit"
    print(f"\n{n} members, max_parallel {args.parallel}, {limit}, {args.rounds} round(s), medians:")
    print(f"{'':32} {'total s':>9} {'ms/member':>10}  runs")
    rows = [
        ("(a) core, changed members", "core"),
        ("(b) flow, changed members", "flow"),
        ("(c) flow, no-change night", "quiet"),
        ("(d) flow of no-op tasks", "noop"),
    ]
    for label, key in rows:
        print(f"{label:32} {med[key]:9.1f} {1000 * med[key] / n:10.1f}  {runs[key]}")
    print(
        f"orchestration per changed member: {1000 * overhead_each:.1f} ms = "
        f"{overhead_each / core_each:.2f}x the core's {1000 * core_each:.1f} ms (target <= 3x); "
        f"flow/core {flow_each / core_each:.2f}x"
    )
    print(f"no-change night / no-op flow: {med['quiet'] / med['noop']:.2f}x (target <= 1.5x)")
    print(f"server database after the rounds: {db_mb:.0f} MB")


if __name__ == "__main__":
    main()
