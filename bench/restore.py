"""Restore throughput: ours (SFTP read → sha256 → zstd -d → zfs receive) against the shell.

The shell baseline is `ssh host cat f | zstd -d | zfs receive`, run in the same
session against the same file, alternating with ours `--rounds` times (who
goes first alternates too); each restore goes into a fresh dataset that is
destroyed afterwards. Ours also checks sha256, which the baseline does not.
CPU is all of each path's processes (ours: the child with its `ssh` and `zfs
receive`); zfs-fuse receives in its daemon, whose CPU is left out of both.
`--baseline DIR` (another version's tree, `git archive REV | tar -x -C DIR`)
runs that version's restore as a third path in the same rounds: before/after.

Run as root: `.venv/bin/python -m bench.restore --size-mb 512`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from bench.loopback import loopback
from bench.thread_cpu import COLLECT, SETUP, START
from bench.throughput import MB, make_data, run_shell
from tests.support.zfsdata import create_member, destroy_dataset, snapshot


def run_ours(
    settings_json: str,
    destination: str,
    checkout: Path | None = None,
    preload: tuple[str, ...] = (),
    threads: bool = False,
) -> dict:
    """Restore in a child process so its peak RSS and CPU are its own; from `checkout` if given.

    Timed inside the child from before the SSH connection to the received
    snapshot, so Python's start-up (imports, about a second) is left out; the
    shell's time includes its `ssh` handshake. `preload`: modules the store
    imports on first use (the S3 store's boto3), imported before the clock starts.
    `threads`: also each thread's CPU seconds, as "threads" (bench/thread_cpu.py).
    """
    imports = "".join(f"import {module}\n" for module in preload)
    setup, clock, collect = (SETUP, START, COLLECT) if threads else ("", "", "")
    code = f"""
{imports}{setup}import json, resource, time
def cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime
from contextlib import closing
from zfs_offsite.settings import load_settings
from zfs_offsite.connect import open_runner, open_store
from zfs_offsite.jobs.restore import restore_member
s = load_settings(**json.loads({settings_json!r}))
{collect}
start, cpu_start = time.monotonic(), cpu()
{clock}
with closing(open_runner(s)) as runner, closing(open_store(s.target)) as store:
    r = restore_member(s, runner, store, "bench", {destination!r})
print(json.dumps({{"raw": r.raw_bytes, "seconds": time.monotonic() - start,
                  "cpu": cpu() - cpu_start,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "threads": {"_thread_cpu()" if threads else "{}"}}}))
"""
    # `-c` puts the working directory first on sys.path: the checkout's zfs_offsite is the one run.
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=checkout
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return {key: data[key] for key in ("seconds", "raw", "cpu", "rss_mb", "threads")}


def mb_s(runs: list[dict]) -> float:
    return statistics.median(r["raw"] / 1e6 / r["seconds"] for r in runs)


def cpu_per_gb(runs: list[dict]) -> float:
    return statistics.median(r["cpu"] / (r["raw"] / 1e9) for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a checkout of another version (`git archive REV | tar -x -C DIR`): its restore "
        "runs as a third path in the same rounds, for before/after",
    )
    args = parser.parse_args()
    with loopback("restore", args.size_mb * 3 + 512) as env:
        pool, archive = env.pool, env.archive
        dataset = create_member(pool.name, "bench")
        make_data(pool.mountpoint / "elabfs-bench", args.size_mb)
        snapshot(dataset, "bench")
        settings = {
            "source": {"pool": pool.name},
            "target": {
                "url": env.sftp_url,
                "key_file": str(env.sshd.client_key),
                "known_hosts": str(env.sshd.known_hosts),
            },
        }
        backup = (
            "import json,sys; from zfs_offsite.settings import load_settings;"
            "from zfs_offsite.jobs.backup import backup_member, discover_members;"
            "s = load_settings(**json.loads(sys.argv[1]));"
            "[backup_member(s, m) for m in discover_members(s)]"
        )
        subprocess.run([sys.executable, "-c", backup, json.dumps(settings)], check=True)
        (stored,) = (archive / "bench").glob("*.zst")
        ssh = env.ssh_command()
        raw = json.loads((archive / "bench" / f"{stored.name}.json").read_text())["raw_bytes"]
        ours: list[dict] = []
        shell: list[dict] = []
        before: list[dict] = []

        def run_ours_once(i: int) -> None:
            ours.append(run_ours(json.dumps(settings), f"{pool.name}/restored-ours-{i}"))
            destroy_dataset(f"{pool.name}/restored-ours-{i}")

        def run_before_once(i: int) -> None:
            target = f"{pool.name}/restored-before-{i}"
            before.append(run_ours(json.dumps(settings), target, args.baseline))
            destroy_dataset(target)

        def run_shell_once(i: int) -> None:
            target = f"{pool.name}/restored-shell-{i}"
            command = f"{ssh} cat {stored} | zstd -d -q | zfs receive {target}"
            shell.append(run_shell(["sh", "-c", command], None) | {"raw": raw})
            destroy_dataset(target)

        order = [run_shell_once, run_ours_once] + ([run_before_once] if args.baseline else [])
        for i in range(args.rounds):  # rotate who goes first: no position bias
            shift = i % len(order)
            for run in order[shift:] + order[:shift]:
                run(i)
        print(f"stream: {raw / MB:.0f} MiB raw, {stored.stat().st_size / MB:.0f} MiB stored")
        paths = [("ours (sftp)", ours), ("shell ssh cat|zstd -d", shell)]
        if args.baseline:
            paths.append((f"before ({args.baseline.name})", before))
        for name, runs in paths:
            rates = [r["raw"] / 1e6 / r["seconds"] for r in runs]
            rss = max(r["rss_mb"] for r in runs)
            listed = ", ".join(f"{x:.0f}" for x in rates)
            print(
                f"{name:24} {statistics.median(rates):8.1f} MB/s (runs {listed}),"
                f" {cpu_per_gb(runs):5.2f} CPU-s/GB, RSS {rss:.0f} MB"
            )
        for name, runs in paths[::2]:
            print(
                f"ratio {name} / shell restore: {mb_s(runs) / mb_s(shell):.2f}x MB/s"
                f" (target >= 1.0), {cpu_per_gb(runs) / cpu_per_gb(shell):.2f}x CPU-s/GB"
            )


if __name__ == "__main__":
    main()
