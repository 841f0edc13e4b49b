"""Stream one snapshot three ways in one run and compare MB/s and peak RSS.

1. ours: zfs-offsite's pipeline (zstd, then gzip via isal) over SFTP to a loopback sshd
2. shell: `zfs send | zstd -3 -T2 | ssh -c aes128-gcm@openssh.com host 'cat > f'`
3. seed:  `zfs send | gzip > f` (the seed script's path, local file)

Run as root: `.venv/bin/python -m bench.throughput --size-mb 1024`. Peak RSS of
ours is the benchmark process's own (ru_maxrss of a child that runs it); for
the shell pipelines it is the largest of their processes.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench.loopback import loopback
from tests.support.zfsdata import create_member, snapshot

MB = 1024 * 1024


def make_data(directory: Path, size_mb: int) -> None:
    """Mixed data: half random (incompressible), half text-like (compressible)."""
    with (directory / "random.bin").open("wb") as out, Path("/dev/urandom").open("rb") as rnd:
        for _ in range(size_mb // 2):
            out.write(rnd.read(MB))
    line = b"2019-08-06 02:00 sample=%08d value=%08d lab member measurement notes\n"
    with (directory / "log.txt").open("wb") as out:
        n = 0
        while out.tell() < (size_mb - size_mb // 2) * MB:
            out.write(b"".join(line % (n + i, (n + i) * 7919 % 99991) for i in range(4096)))
            n += 4096


def children_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def run_ours(snapshot_name: str, url: str, key: Path, known: Path, algo: str) -> dict:
    """Runs the pipeline in a child process so its peak RSS is measured alone.

    Timed inside the child from before the SSH connection to the renamed file,
    so Python's start-up (imports, about a second) is left out, as it is once
    per night, not per byte; the shell's time includes its `ssh` handshake.
    """
    code = f"""
import json, resource, sys, time
from zfs_offsite.settings import load_settings
from zfs_offsite.zfs.runner import LocalRunner
from zfs_offsite.connect import open_store
from zfs_offsite.stream.upload import stream_to_store
from zfs_offsite.stream.compression import compressor
from zfs_offsite.archive.names import Compression
target = {{"url": {url!r}, "key_file": {str(key)!r}, "known_hosts": {str(known)!r}}}
s = load_settings(target=target, compression={{"algorithm": {algo!r}}})
start = time.monotonic()
store = open_store(s.target)
store.makedirs("bench")
proc = LocalRunner().start(["zfs", "send", {snapshot_name!r}])
c = compressor(Compression({algo!r}), s.compression.effective_level, s.compression.threads)
r = stream_to_store(proc, c, store, "bench/ours-{algo}")
store.close()
seconds = time.monotonic() - start
print(json.dumps({{"raw": r.raw_bytes, "stored": r.stored_bytes, "seconds": seconds,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        "seconds": data["seconds"],
        "raw": data["raw"],
        "stored": data["stored"],
        "rss_mb": data["rss_mb"],
    }


def run_shell(argv: list[str], raw: int) -> dict:
    """A shell pipeline run in its own child: wall time and its processes' peak RSS."""
    wrapper = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
    )
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *argv], check=True, capture_output=True, text=True
    )
    seconds = time.monotonic() - start
    return {"seconds": seconds, "raw": raw, "rss_mb": float(out.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--skip-seed", action="store_true", help="skip the slow gzip -6 path")
    args = parser.parse_args()
    with loopback("throughput", args.size_mb * 2 + 512) as env:
        dataset = create_member(env.pool.name, "bench")
        make_data(env.pool.mountpoint / "elabfs-bench", args.size_mb)
        snapshot(dataset, "bench")
        snap = f"{dataset}@bench"
        key, known = env.sshd.client_key, env.sshd.known_hosts
        results = {}
        results["ours zstd (sftp)"] = run_ours(snap, env.sftp_url, key, known, "zstd")
        raw = results["ours zstd (sftp)"]["raw"]
        upload = f"{env.ssh_command()} 'cat > {env.archive}/shell.zst'"
        results["shell zstd|ssh"] = run_shell(
            ["sh", "-c", f"zfs send {snap} | zstd -3 -T2 -q | {upload}"], raw
        )
        results["ours gzip (sftp)"] = run_ours(snap, env.sftp_url, key, known, "gzip")
        if not args.skip_seed:
            results["seed zfs send|gzip>f"] = run_shell(
                ["sh", "-c", f"zfs send {snap} | gzip > {env.work}/seed.gz"], raw
            )
        print(f"stream: {raw / MB:.0f} MiB raw")
        print(f"{'path':24} {'MB/s':>8} {'peak RSS MB':>12}")
        for name, r in results.items():
            r["mb_s"] = r["raw"] / 1e6 / r["seconds"]
            print(f"{name:24} {r['mb_s']:8.1f} {r['rss_mb']:12.1f}")
        ours_z, shell = results["ours zstd (sftp)"], results["shell zstd|ssh"]
        print(
            f"ratio ours zstd / shell pipeline: {ours_z['mb_s'] / shell['mb_s']:.2f}x"
            " (target >= 1.0)"
        )
        if "seed zfs send|gzip>f" in results:
            seed = results["seed zfs send|gzip>f"]
            print(
                f"ratio ours gzip / seed: {results['ours gzip (sftp)']['mb_s'] / seed['mb_s']:.2f}x"
                " (target >= 5)"
            )


if __name__ == "__main__":
    main()
