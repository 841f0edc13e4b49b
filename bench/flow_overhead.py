"""A no-change nightly run over many members against a flow of as many no-op tasks.

Both flows run in the same process on the same ephemeral Prefect server, one
after the other, alternating, `--rounds` times each; the figure is the ratio of
the medians. The members are real zfs-fuse datasets with one snapshot each,
already backed up to a local target, so the backup run discovers, reads every
member's remote index, plans "up to date" and sends nothing.

Run as root: `.venv/bin/python -m bench.flow_overhead --members 200`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner

from tests.support.services import create_pool, ensure_zfs_fuse, run


@task
def noop(i: int) -> int:
    """The baseline: a task that does nothing."""
    return i


@flow(task_runner=ThreadPoolTaskRunner(max_workers=16))
def noop_flow(n: int) -> list[int]:
    """The baseline flow: `n` no-op tasks fanned out and awaited."""
    return [f.result() for f in [noop.submit(i) for i in range(n)]]


def make_members(pool: str, count: int) -> None:
    for i in range(count):
        dataset = f"{pool}/elabfs-m{i:03d}"
        run(["zfs", "create", "-o", "mountpoint=none", dataset])
        run(["zfs", "snapshot", f"{dataset}@auto-20190806.0200-1w"])


def timed(settle: float, fn, *args: object) -> float:  # type: ignore[no-untyped-def]
    """Wall time of one flow call, after letting the server finish recording the last one."""
    time.sleep(settle)
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--settle", type=float, default=10.0, help="seconds to let the server drain its events"
    )
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    ensure_zfs_fuse()
    work = Path(tempfile.mkdtemp(prefix="zfs-offsite-bench-", dir="/var/tmp"))
    os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = str(work / "results")
    pool = create_pool(work, prefix="zobench")
    try:
        print(f"creating {args.members} members ...", flush=True)
        make_members(pool.name, args.members)
        os.environ["ZFS_OFFSITE_SOURCE__POOL"] = pool.name
        os.environ["ZFS_OFFSITE_TARGET__URL"] = f"file://{work}/archive"
        from flows.backup import backup_flow

        first = backup_flow()
        assert all(o.error is None for o in first), "the initial backup failed"
        noop_flow(args.members)  # warm the server and the imports
        backup_s, noop_s = [], []
        for _ in range(args.rounds):
            backup_s.append(timed(args.settle, backup_flow))
            noop_s.append(timed(args.settle, noop_flow, args.members))
        b, n = statistics.median(backup_s), statistics.median(noop_s)
        runs_b = ", ".join(f"{x:.2f}" for x in backup_s)
        runs_n = ", ".join(f"{x:.2f}" for x in noop_s)
        print(f"no-change backup of {args.members} members: {b:.2f} s median (runs {runs_b})")
        print(f"flow of {args.members} no-op tasks: {n:.2f} s median (runs {runs_n})")
        print(f"ratio of medians: {b / n:.2f}x (target <= 1.5x)")
        print(f"ratio of best runs: {min(backup_s) / min(noop_s):.2f}x")
    finally:
        pool.destroy()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
