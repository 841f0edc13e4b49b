"""How long a flow command waits on Prefect: a no-change backup against a bare flow plus `plan`.

One run, side by side, each command a fresh process as a user types it:

(a) backup   `zfs-offsite backup` with nothing new to send (N members, each up to
             date), against a running `prefect server start` (PREFECT_API_URL set)
(b) baseline a bare Prefect flow that does nothing (a fresh `python -c`, same
             server) plus `zfs-offsite plan` (the same discovery and planning)
(c) local    a second flow command on a machine with no server configured: the
             same no-change backup, after a first command started the local server

The rounds alternate (a) (b) (c); the figures are medians. Targets: (a) <= 1.5x (b),
and (c) pays no server start (the first command's wait is shown once, apart).

Run as root (zfs-fuse; 3 members take a few minutes at 3 rounds):
    .venv/bin/python -m bench.startup --members 3 --rounds 3
`--profile FILE` writes a cProfile of one more no-change backup command (pstats).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.prefect_server import prefect_server
from tests.support.services import Pool, create_pool, ensure_zfs_fuse, run

CLI = str(Path(sys.executable).with_name("zfs-offsite"))
BARE_FLOW = "from prefect import flow\n@flow(name='bare')\ndef bare() -> None:\n    pass\nbare()\n"


def make_members(pool: str, count: int) -> None:
    """`count` empty members, one snapshot each (no mounts: zfs-fuse mounts are slow)."""
    for i in range(count):
        run(["zfs", "create", "-o", "mountpoint=none", f"{pool}/elabfs-m{i}"])
    run(["zfs", "snapshot", "-r", f"{pool}@auto-20190806.0200-1w"])


def timed(argv: list[str], env: dict[str, str], cwd: Path, expect: str = "") -> float:
    """Wall seconds of one command, which must exit 0 (and print `expect`)."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    if done.returncode != 0 or expect not in done.stdout + done.stderr:
        sys.exit(f"{' '.join(argv[:3])} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pool-prefix", default="zostart", help="name prefix of the bench pool")
    parser.add_argument("--profile", type=Path, help="cProfile one more no-change backup here")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    ensure_zfs_fuse()
    work = Path(tempfile.mkdtemp(prefix="zfs-offsite-startup-", dir="/var/tmp"))
    (work / "cwd").mkdir()
    (work / "prefect").mkdir()
    pool = create_pool(work, prefix=args.pool_prefix)
    local_home = work / "local-prefect"
    try:
        make_members(pool.name, args.members)
        # Bytecode cached, as on an installed host (pip compiles it at install): a caller's
        # PYTHONDONTWRITEBYTECODE would add compiling Prefect's sources to every command.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ZFS_OFFSITE_", "PREFECT_")) and k != "PYTHONDONTWRITEBYTECODE"
        }
        env |= {
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "COLUMNS": "200",  # table cells unwrapped: the checks read "up to date"
            "ZFS_OFFSITE_SOURCE__POOL": pool.name,
            "ZFS_OFFSITE_TARGET__URL": f"file://{work / 'archive'}",
            "OFFSITE_ENV_FILE": str(work / "no-env-file"),  # never the host's server
        }
        with prefect_server(work / "prefect") as server_env:
            served = env | {
                "PREFECT_HOME": server_env["PREFECT_HOME"],
                "PREFECT_API_URL": server_env["PREFECT_API_URL"],
                "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(work / "results"),
            }
            local = env | {
                "PREFECT_HOME": str(local_home),
                "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(local_home / "storage"),
            }
            cwd = work / "cwd"
            timed([CLI, "backup"], served, cwd, "full")  # the first backup sends fulls
            first = timed([CLI, "backup"], local, cwd, "up to date")  # starts the local server
            times: dict[str, list[float]] = {"backup": [], "flow": [], "plan": [], "local": []}
            for _ in range(args.rounds):
                times["backup"].append(timed([CLI, "backup"], served, cwd, "up to date"))
                times["flow"].append(timed([sys.executable, "-c", BARE_FLOW], served, cwd))
                times["plan"].append(timed([CLI, "plan"], served, cwd, "up to date"))
                times["local"].append(timed([CLI, "backup"], local, cwd, "up to date"))
            report(args, times, first)
            if args.profile:
                profiled = [sys.executable, "-m", "cProfile", "-o", str(args.profile), CLI]
                timed([*profiled, "backup"], served, cwd, "up to date")
                print(f"profile of one no-change backup: {args.profile}")
    finally:
        stop_local_server(local_home)
        destroy(pool)
        shutil.rmtree(work, ignore_errors=True)


def destroy(pool: Pool) -> None:
    """zfs-fuse calls a pool busy while other pools' commands run: retry for a few minutes."""
    for _ in range(17):
        try:
            pool.destroy()
            return
        except RuntimeError:
            time.sleep(10)
    pool.destroy()


def stop_local_server(home: Path) -> None:
    """The local server the (c) commands left running, stopped by its recorded process."""
    from cli.local_server import stop_recorded

    stop_recorded(home)


def report(args: argparse.Namespace, times: dict[str, list[float]], first: float) -> None:
    med = {k: statistics.median(v) for k, v in times.items()}
    runs = {k: ", ".join(f"{x:.1f}" for x in v) for k, v in times.items()}
    baseline = med["flow"] + med["plan"]
    print(f"\n{args.members} members, nothing new to send, {args.rounds} round(s), medians:")
    rows = [
        ("(a) backup, running server", "backup"),
        ("    bare flow", "flow"),
        ("    plan", "plan"),
        ("(c) backup, local server", "local"),
    ]
    for label, key in rows:
        print(f"{label:32} {med[key]:6.1f} s  ({runs[key]})")
    print(f"{'(b) baseline: bare flow + plan':32} {baseline:6.1f} s")
    print(f"first command without a server (starts it): {first:.1f} s")
    print(f"ratio (a) backup / (b) baseline: {med['backup'] / baseline:.2f}x (target <= 1.5x)")
    print(f"ratio (c) local backup / (b) baseline: {med['local'] / baseline:.2f}x")
    print(f"ratio (c) local backup / (a) backup: {med['local'] / med['backup']:.2f}x")


if __name__ == "__main__":
    main()
