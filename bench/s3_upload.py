"""Upload one snapshot to S3 two ways, in alternating rounds: ours vs the shell and rclone.

1. ours:   zfs-offsite's upload pipeline (`zfs send`, zstd at the default settings,
           sha256) into the S3 store's multipart writer, completed and HEAD-checked
           as a night commits it (remote/s3.py, s3_upload.py)
2. rclone: `zfs send | zstd -3 -T2 | rclone rcat` to the same bucket

Both go to the same real Ceph RGW (started by tests/support/rgw.py unless --dir
names a running one: `python -m tests.support.rgw start`), with the same parts
(32 MiB, the store's default) and the same number in flight (2), so both hold
the same buffers; each upload is checked (HEAD: its size) and deleted.

Each round runs both, in an order rotated per round, so load from other users
of a shared machine falls on both alike; figures are medians over the rounds.
Per path: MB/s of raw stream (1 MB = 1e6 bytes), CPU seconds per GB of raw
stream of the path's own processes, children included (ours: the Python process
with `zfs send`; rclone: the shell, `zfs send`, zstd and rclone), plus the
zfs-fuse daemon's CPU read from /proc around each run (where the send really
runs; counted for both alike), and peak RSS (ours: its process; rclone: the
largest process of the pipeline). The RGW's CPU is the server's, not counted.
Ours is timed in a child process of its own from before the store is opened,
Python's start-up left out.

`--rss-sizes 1024 4096` adds one run of ours per size (MiB of data), alone, for
its peak RSS: the multipart writer's bound must not grow with the stream.

Run as root: `.venv/bin/python -m bench.s3_upload --size-mb 1024 --rounds 3`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.cpu import proc_cpu, zfs_fuse_pid
from bench.throughput import make_data, send_size
from tests.support.rgw import Rgw, load, start, stop
from tests.support.services import create_pool, ensure_zfs_fuse
from tests.support.zfsdata import create_member, destroy_dataset, snapshot

MiB = 1 << 20
GB = 1e9
MIN_ROUNDS = 3  # a median of fewer is one run's luck on a shared machine
OURS = "ours (s3 store)"
RCLONE = "zfs send|zstd|rclone rcat"


def child_main(spec: dict[str, Any]) -> None:
    """Ours, in a process of its own: time, CPU (children included) and peak RSS."""
    import resource

    from zfs_offsite.archive.names import Compression
    from zfs_offsite.connect import open_store
    from zfs_offsite.settings import load_settings
    from zfs_offsite.stream.compression import compressor
    from zfs_offsite.stream.upload import stream_to_store
    from zfs_offsite.zfs.commands import send_argv
    from zfs_offsite.zfs.runner import LocalRunner

    def cpu() -> float:
        total = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(who)
            total += usage.ru_utime + usage.ru_stime
        return total

    settings = load_settings(
        target={"url": spec["url"], "s3": {"endpoint_url": spec["endpoint"]}},
        compression={"algorithm": "zstd"},
    )
    cpu_start, started = cpu(), time.monotonic()
    store = open_store(settings.target)
    store.create_root()
    level, threads = settings.compression.effective_level, settings.compression.threads
    final = "bench/ours.zst"
    result = stream_to_store(
        LocalRunner().start(send_argv(spec["snapshot"])),
        compressor(Compression.ZSTD, level, threads),
        store,
        final,
    )
    store.rename(result.partial, final)  # the commit: CompleteMultipartUpload, then HEAD
    seconds = time.monotonic() - started
    used = cpu() - cpu_start
    store.remove(final)
    store.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "cpu": used, "stored": result.stored_bytes,
                      "rss_mb": rss}))  # fmt: skip


def run_ours(rgw: Rgw, bucket: str, snap: str) -> dict[str, float]:
    spec = {"url": f"s3://{bucket}/w", "endpoint": rgw.endpoint, "snapshot": snap}
    argv = [sys.executable, "-m", "bench.s3_upload", "--child", json.dumps(spec)]
    out = subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True, env=_aws_env(rgw))
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run_rclone(rgw: Rgw, bucket: str, snap: str) -> dict[str, float]:
    """The pipeline under a wrapper that waits for it: wall time, CPU and peak RSS of all."""
    key = f"w/bench/rclone-{os.urandom(4).hex()}.zst"
    env = _aws_env(rgw) | {  # credentials in the environment, never on a command line
        "RCLONE_S3_PROVIDER": "Ceph",
        "RCLONE_S3_ENDPOINT": rgw.endpoint,
        "RCLONE_S3_ACCESS_KEY_ID": rgw.access_key,
        "RCLONE_S3_SECRET_ACCESS_KEY": rgw.secret_key,
        "RCLONE_S3_REGION": rgw.region,
        "RCLONE_S3_FORCE_PATH_STYLE": "true",
    }
    pipeline = (
        f"zfs send {snap} | zstd -3 -T2 -q | rclone rcat -q --s3-chunk-size=32M "
        f"--s3-upload-concurrency=2 :s3:{bucket}/{key}"
    )
    wrapper = (
        "import json, resource, subprocess, sys, time\n"
        "start = time.monotonic()\n"
        "subprocess.run(['bash', '-o', 'pipefail', '-c', sys.argv[1]], check=True)\n"
        "seconds = time.monotonic() - start\n"
        "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(json.dumps({'seconds': seconds, 'cpu': u.ru_utime + u.ru_stime,"
        " 'rss_mb': u.ru_maxrss / 1024}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, pipeline], check=True, stdout=subprocess.PIPE, text=True,
        env=env,
    )  # fmt: skip
    result = dict(json.loads(out.stdout.strip().splitlines()[-1]))
    s3 = rgw.client()
    result["stored"] = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
    s3.delete_object(Bucket=bucket, Key=key)
    return result


def _aws_env(rgw: Rgw) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ZFS_OFFSITE_"))}
    # rclone 1.60 cannot load a CA bundle into its plain-HTTP transport: none here.
    return env | {
        "AWS_ACCESS_KEY_ID": rgw.access_key,
        "AWS_SECRET_ACCESS_KEY": rgw.secret_key,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_CONFIG_FILE": os.devnull,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }


def measured(run: Callable[[], dict[str, float]], zfs_pid: int | None) -> dict[str, float]:
    before = proc_cpu(zfs_pid) if zfs_pid else 0.0
    result = run()
    result["zfs_cpu"] = (proc_cpu(zfs_pid) - before) if zfs_pid else 0.0
    return result


def summarize(runs: list[dict[str, float]], raw: int) -> dict[str, float]:
    gb = raw / GB
    return {
        "mb_s": statistics.median(raw / 1e6 / r["seconds"] for r in runs),
        "cpu_s_per_gb": statistics.median(r["cpu"] / gb for r in runs),
        "cpu_s_per_gb_with_zfs": statistics.median((r["cpu"] + r["zfs_cpu"]) / gb for r in runs),
        "ratio": statistics.median(raw / r["stored"] for r in runs),
        "rss_mb": max(r["rss_mb"] for r in runs),
    }


def compare(rgw: Rgw, bucket: str, snap: str, raw: int, rounds: int) -> dict[str, Any]:
    paths = {
        OURS: lambda: run_ours(rgw, bucket, snap),
        RCLONE: lambda: run_rclone(rgw, bucket, snap),
    }
    names = list(paths)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    zfs_pid = zfs_fuse_pid()
    for round_ in range(rounds):
        for name in names[round_ % 2 :] + names[: round_ % 2]:
            runs[name].append(measured(paths[name], zfs_pid))
    table = {name: summarize(r, raw) for name, r in runs.items()}
    ours, theirs = table[OURS], table[RCLONE]
    return {
        "raw_bytes": raw,
        "rounds": rounds,
        "paths": table,
        "runs": runs,
        "ours_vs_rclone": {key: ours[key] / theirs[key] for key in ours if theirs[key]},
    }


def rss_check(rgw: Rgw, bucket: str, pool: str, mountpoint: Path, sizes: list[int]) -> dict:
    """One run of ours per size, alone: its peak RSS (the bound must hold at any size)."""
    found = {}
    for size in sizes:
        dataset = create_member(pool, f"rss{size}")
        make_data(mountpoint / f"elabfs-rss{size}", size)
        snapshot(dataset, "bench")
        snap = f"{dataset}@bench"
        raw = send_size(snap)
        result = run_ours(rgw, bucket, snap)
        found[f"{raw / MiB:.0f} MiB"] = result["rss_mb"]
        print(f"peak RSS, ours at {raw / MiB:.0f} MiB: {result['rss_mb']:.1f} MB", flush=True)
        destroy_dataset(dataset)
    return found


def print_table(found: dict[str, Any]) -> None:
    raw, rounds = found["raw_bytes"], found["rounds"]
    print(f"raw stream {raw / MiB:.0f} MiB, median of {rounds} round(s)")
    heads = ("MB/s", "CPU-s/GB", "+zfs CPU-s/GB", "ratio", "peak RSS MB")
    keys = ("mb_s", "cpu_s_per_gb", "cpu_s_per_gb_with_zfs", "ratio", "rss_mb")
    print(f"{'path':<28}" + "".join(f"{h:>15}" for h in heads))
    for name, row in found["paths"].items():
        print(f"{name:<28}" + "".join(f"{row[k]:>15.2f}" for k in keys))
    ratio = found["ours_vs_rclone"]
    print(f"{'ours / rclone':<28}" + "".join(f"{ratio.get(k, 0):>14.2f}x" for k in keys))
    for size, rss in found.get("peak_rss_mb", {}).items():
        print(f"peak RSS, ours alone at {size}: {rss:.1f} MB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.s3_upload", description=__doc__)
    parser.add_argument("--size-mb", type=int, default=1024, help="MiB of data in the dataset")
    parser.add_argument("--rounds", type=int, default=MIN_ROUNDS)
    parser.add_argument(
        "--rss-sizes", type=int, nargs="*", default=[], metavar="MB",
        help="one run of ours per size (MiB of data) for its peak RSS",
    )  # fmt: skip
    parser.add_argument("--dir", type=Path, help="a running store's directory (rgw.json)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(json.loads(args.child))
        return 0
    if args.rounds < MIN_ROUNDS:
        print(f"note: {args.rounds} round(s): medians need {MIN_ROUNDS} to mean much")
    for tool in ("rclone", "zstd"):
        if shutil.which(tool) is None:
            print(f"s3_upload: {tool} is not installed (apt-get install {tool})", file=sys.stderr)
            return 2
    ensure_zfs_fuse()
    work = Path(tempfile.mkdtemp(prefix="zfs-offsite-s3-bench-", dir="/var/tmp"))
    rgw = load(args.dir) if args.dir else start(work)
    largest = max([args.size_mb, *args.rss_sizes])  # one dataset at a time besides the first
    pool = create_pool(work, "zos", size_mb=max(512, (args.size_mb + largest) * 3 // 2))
    try:
        dataset = create_member(pool.name, "bench")
        make_data(pool.mountpoint / "elabfs-bench", args.size_mb)
        snapshot(dataset, "bench")
        snap = f"{dataset}@bench"
        raw = send_size(snap)  # read once: every path then reads a warm stream
        bucket = f"bench-{os.urandom(4).hex()}"
        rgw.create_bucket(bucket)
        found = compare(rgw, bucket, snap, raw, args.rounds)
        found["peak_rss_mb"] = rss_check(
            rgw, bucket, pool.name, pool.mountpoint, args.rss_sizes
        )  # fmt: skip
        rgw.client().delete_bucket(Bucket=bucket)
    finally:
        pool.destroy()
        if not args.dir:
            stop(Path(rgw.directory))
        shutil.rmtree(work, ignore_errors=True)
    print_table(found)
    if args.json:
        args.json.write_text(json.dumps(found, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
