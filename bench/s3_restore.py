"""Restore from S3 two ways, in alternating rounds: ours vs `rclone cat | zstd -d | zfs receive`.

1. ours:   zfs-offsite's restore (one streaming GET of the object, read in 1 MiB pieces
           with one read ahead → sha256 → zstd -d in process → `zfs receive`,
           remote/s3.py's `read_chunks`, jobs/restore.py)
2. rclone: `rclone cat :s3:BUCKET/KEY | zstd -d | zfs receive`, the pipeline
           `restore --commands` prints for a bucket

Both read the same object (one full backup, made by ours first) from the same
real Ceph RGW (started by tests/support/rgw.py), each into a fresh dataset that is
destroyed afterwards. Each round runs both, in an order rotated per round, so load
from other users of a shared machine falls on both alike; figures are medians over
the rounds. Ours also checks the sha256 and the stream's sidecar, which rclone does
not. MB/s are of the raw stream (1 MB = 1e6 bytes); CPU is each path's own
processes, children included (ours: the Python process, which decompresses in a
thread of its own, with its `zfs receive`; rclone: the shell, rclone, zstd and `zfs
receive`); zfs-fuse receives in its daemon, whose CPU is left out of both, as is
the RGW's. Ours is timed in a child process from before the store is opened,
Python's start-up left out (with the import of boto3, which the store does on
first use: `--timed-imports` counts it).

`--baseline DIR` (another version's tree, `git archive REV | tar -x -C DIR`; may be
given more than once) runs that version's restore as a further path in the same rounds,
for before/after side by side.

Run as root: `.venv/bin/python -m bench.s3_restore --size-mb 384 --rounds 3`.
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
from collections.abc import Callable
from pathlib import Path

from bench.restore import cpu_per_gb, mb_s, run_ours
from bench.throughput import MB, make_data, run_shell
from tests.support.rgw import Rgw, load, start, stop
from tests.support.services import create_pool, ensure_zfs_fuse
from tests.support.zfsdata import create_member, destroy_dataset, snapshot

MIN_ROUNDS = 3  # a median of fewer is one run's luck on a shared machine
PREFIX = "w"
OURS = "ours (s3 store)"
RCLONE = "rclone cat|zstd -d"
# Imported before ours is timed, as Python's own start-up is: the store imports boto3 on
# first use, about 1 s of a fresh process on a busy 2-core box (creating the client, its
# service model read, is timed).
PRELOAD = ("zfs_offsite.remote.s3", "zfs_offsite.jobs.restore")


def use_store(rgw: Rgw) -> None:
    """The store's keys for this process and its children, as the AWS and rclone variables:
    credentials in the environment, never on a command line or in settings."""
    for name in [n for n in os.environ if n.startswith(("AWS_", "ZFS_OFFSITE_", "RCLONE_"))]:
        del os.environ[name]
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": rgw.access_key,
            "AWS_SECRET_ACCESS_KEY": rgw.secret_key,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_CONFIG_FILE": os.devnull,
            "RCLONE_S3_PROVIDER": "Ceph",
            "RCLONE_S3_ENDPOINT": rgw.endpoint,
            "RCLONE_S3_ACCESS_KEY_ID": rgw.access_key,
            "RCLONE_S3_SECRET_ACCESS_KEY": rgw.secret_key,
            "RCLONE_S3_REGION": rgw.region,
            "RCLONE_S3_FORCE_PATH_STYLE": "true",
        }
    )


def back_up(settings: dict) -> None:
    """One full backup of member `bench` by ours, in a child process (as a night runs it)."""
    code = (
        "import json,sys; from zfs_offsite.settings import load_settings;"
        "from zfs_offsite.jobs.backup import backup_member, discover_members;"
        "s = load_settings(**json.loads(sys.argv[1]));"
        "[backup_member(s, m) for m in discover_members(s)]"
    )
    subprocess.run([sys.executable, "-c", code, json.dumps(settings)], check=True)


def the_backup(rgw: Rgw, bucket: str) -> tuple[str, int, int]:
    """(key, stored bytes, raw bytes) of the one stream object in the bucket."""
    s3 = rgw.client()
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/bench/")["Contents"]
    (found,) = [o for o in listed if o["Key"].endswith(".zst")]
    sidecar = s3.get_object(Bucket=bucket, Key=found["Key"] + ".json")["Body"].read()
    return found["Key"], int(found["Size"]), int(json.loads(sidecar)["raw_bytes"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.s3_restore", description=__doc__)
    parser.add_argument("--size-mb", type=int, default=384, help="MiB of data in the dataset")
    parser.add_argument("--rounds", type=int, default=MIN_ROUNDS)
    parser.add_argument("--dir", type=Path, help="a running store's directory (rgw.json)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument(
        "--timed-imports",
        action="store_true",
        help="time ours from before boto3 is imported (a fresh process's first S3 restore)",
    )
    parser.add_argument(
        "--threads",
        action="store_true",
        help="also print each thread's CPU-s/GB of ours (bench/thread_cpu.py)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        action="append",
        default=[],
        help="a checkout of another version (`git archive REV | tar -x -C DIR`): its restore "
        "runs as a further path in the same rounds, for before/after (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.rounds < MIN_ROUNDS:
        print(f"note: {args.rounds} round(s): medians need {MIN_ROUNDS} to mean much")
    for tool in ("rclone", "zstd"):
        if shutil.which(tool) is None:
            print(f"s3_restore: {tool} is not installed (apt-get install {tool})", file=sys.stderr)
            return 2
    ensure_zfs_fuse()
    work = Path(tempfile.mkdtemp(prefix="zfs-offsite-s3-restore-", dir="/var/tmp"))
    rgw = load(args.dir) if args.dir else start(work)
    pool = create_pool(work, "zor", size_mb=max(512, args.size_mb * 3 + 256))
    try:
        use_store(rgw)
        bucket = f"bench-{os.urandom(4).hex()}"
        rgw.create_bucket(bucket)
        dataset = create_member(pool.name, "bench")
        make_data(pool.mountpoint / "elabfs-bench", args.size_mb)
        snapshot(dataset, "bench")
        settings = {
            "source": {"pool": pool.name},
            "target": {"url": f"s3://{bucket}/{PREFIX}", "s3": {"endpoint_url": rgw.endpoint}},
        }
        back_up(settings)
        key, stored, raw = the_backup(rgw, bucket)
        runs: dict[str, list[dict]] = {OURS: [], RCLONE: []}
        runs.update({f"before ({b.name})": [] for b in args.baseline})

        preload = () if args.timed_imports else PRELOAD

        def ours(i: int) -> None:
            target = f"{pool.name}/restored-ours-{i}"
            runs[OURS].append(
                run_ours(json.dumps(settings), target, preload=preload, threads=args.threads)
            )
            destroy_dataset(target)

        def rclone(i: int) -> None:
            target = f"{pool.name}/restored-rclone-{i}"
            command = f"rclone cat :s3:{bucket}/{key} | zstd -d -q | zfs receive {target}"
            runs[RCLONE].append(run_shell(["bash", "-o", "pipefail", "-c", command], None))
            runs[RCLONE][-1]["raw"] = raw
            destroy_dataset(target)

        def before(checkout: Path) -> Callable[[int], None]:
            def run(i: int) -> None:
                target = f"{pool.name}/restored-before-{i}"
                done = run_ours(
                    json.dumps(settings), target, checkout.resolve(), preload, args.threads
                )
                runs[f"before ({checkout.name})"].append(done)
                destroy_dataset(target)

            return run

        order = [rclone, ours] + [before(b) for b in args.baseline]
        for i in range(args.rounds):  # rotate who goes first: no position bias
            shift = i % len(order)
            for run in order[shift:] + order[:shift]:
                run(i)
        for name in list(os.environ):
            if name.startswith("RCLONE_"):
                del os.environ[name]
    finally:
        pool.destroy()
        if not args.dir:
            stop(Path(rgw.directory))
        shutil.rmtree(work, ignore_errors=True)
    print(f"stream: {raw / MB:.0f} MiB raw, {stored / MB:.0f} MiB stored, {args.rounds} round(s)")
    for name, done in runs.items():
        rates = ", ".join(f"{r['raw'] / 1e6 / r['seconds']:.0f}" for r in done)
        rss = max(r["rss_mb"] for r in done)
        print(
            f"{name:24} {mb_s(done):8.1f} MB/s (runs {rates}),"
            f" {cpu_per_gb(done):5.2f} CPU-s/GB, RSS {rss:.0f} MB"
        )
    for name in [n for n in runs if n != RCLONE and args.threads]:
        by_thread = {t: [r["threads"].get(t, 0.0) / (r["raw"] / 1e9) for r in runs[name]]
                     for t in runs[name][0]["threads"]}  # fmt: skip
        shown = ", ".join(f"{t} {statistics.median(v):.2f}" for t, v in sorted(by_thread.items()))
        print(f"{name:24} CPU-s/GB by thread (medians): {shown}")
    for name in [n for n in runs if n != RCLONE]:
        speed = mb_s(runs[name]) / mb_s(runs[RCLONE])
        cpu = cpu_per_gb(runs[name]) / cpu_per_gb(runs[RCLONE])
        print(
            f"ratio {name} / rclone restore: {speed:.2f}x MB/s (target >= 1.0), {cpu:.2f}x CPU-s/GB"
        )
    if args.json:
        args.json.write_text(json.dumps({"raw_bytes": raw, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
