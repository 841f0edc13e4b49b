"""The cost of age encryption: one snapshot streamed with and without it, in one run.

Both runs use zfs-offsite's pipeline (zstd, SFTP to a loopback sshd); the
encrypted one adds the age stage to two recipients. Runs alternate so load on
a shared machine hits both alike; the best of each is compared (target: the
encrypted run at most 15 % slower end to end).

Run as root: `.venv/bin/python -m bench.encryption --size-mb 512 --rounds 2`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from bench.loopback import loopback
from bench.throughput import MB, make_data
from tests.support.zfsdata import create_member, snapshot
from zfs_offsite.keys.keygen import new_identity


def run(snapshot_name: str, url: str, key: Path, known: Path, recipients: list[str]) -> dict:
    """The pipeline in a child process, timed from the connection to the stored file."""
    code = f"""
import json, resource, time
from zfs_offsite.settings import load_settings
from zfs_offsite.zfs.runner import LocalRunner
from zfs_offsite.connect import open_store
from zfs_offsite.stream.upload import stream_to_store
from zfs_offsite.stream.compression import compressor
from zfs_offsite.archive.names import Compression
from zfs_offsite.archive.recipients import parse_recipient
target = {{"url": {url!r}, "key_file": {str(key)!r}, "known_hosts": {str(known)!r}}}
s = load_settings(target=target)
recipients = [parse_recipient(r) for r in {recipients!r}]
start = time.monotonic()
store = open_store(s.target)
store.create_root()
store.makedirs("bench")
proc = LocalRunner().start(["zfs", "send", {snapshot_name!r}])
c = compressor(Compression.ZSTD, s.compression.effective_level, s.compression.threads)
name = "bench/enc.zst.age" if recipients else "bench/plain.zst"
r = stream_to_store(proc, c, store, name, recipients=recipients)
store.remove(r.partial)
store.close()
print(json.dumps({{"raw": r.raw_bytes, "stored": r.stored_bytes,
                  "seconds": time.monotonic() - start,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    recipients = [new_identity()[1], new_identity()[1]]
    with loopback("encryption", args.size_mb * 2 + 512) as env:
        dataset = create_member(env.pool.name, "bench")
        make_data(env.pool.mountpoint / "elabfs-bench", args.size_mb)
        snapshot(dataset, "bench")
        snap = f"{dataset}@bench"
        key, known = env.sshd.client_key, env.sshd.known_hosts
        plain: list[dict] = []
        sealed: list[dict] = []
        for _ in range(args.rounds):
            plain.append(run(snap, env.sftp_url, key, known, []))
            sealed.append(run(snap, env.sftp_url, key, known, recipients))
    best_plain = min(plain, key=lambda r: r["seconds"])
    best_sealed = min(sealed, key=lambda r: r["seconds"])
    print(f"stream: {best_plain['raw'] / MB:.0f} MiB raw, {args.rounds} round(s) each")
    print(f"{'path':24} {'MB/s':>8} {'peak RSS MB':>12}")
    for name, r in (("zstd (sftp)", best_plain), ("zstd + age (sftp)", best_sealed)):
        print(f"{name:24} {r['raw'] / 1e6 / r['seconds']:8.1f} {r['rss_mb']:12.1f}")
    ratio = best_sealed["seconds"] / best_plain["seconds"]
    print(f"encrypted / plain time: {ratio:.2f} (target <= 1.15)")


if __name__ == "__main__":
    main()
