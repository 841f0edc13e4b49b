"""Resume after a cut at 80 % to a bucket: the fraction of the object sent again.

Issue 22's bench line: "Resume after a cut at 80 %: < 30 % of the object sent
again". A member of N MiB of random data (incompressible: the object is about
as big as the stream) in a sparse zfs-fuse pool (zfs-fuse must be running) is
backed up to a real Ceph RGW (started by tests/support/rgw.py unless --dir
names a running one) by a process that is SIGKILLed once the multipart upload
holds 80 % of the stream in acknowledged parts. The next run, in this process,
continues the upload; every UploadPart call of its S3 client is counted. The
object is then checked against its `.sha256`.

What a cut costs: the parts after the last checkpoint (one per 64 MiB of
stored bytes, recorded once every part up to it is acknowledged) are sent
again, so "sent again" is the 20 % never sent plus up to 64 MiB and the parts
in flight: the longer the stream, the nearer to 20 %.

Run as root from the checkout: `.venv/bin/python -m bench.s3_resume --size-mb 512`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.rgw import Rgw, load, start, stop
from tests.support.services import create_pool
from tests.support.zfsdata import SNAP, random_member
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.remote import s3
from zfs_offsite.remote.s3_credentials import S3Keys
from zfs_offsite.settings import load_settings

MiB = 1 << 20
PREFIX = "bench/zfs"


def acknowledged(rgw: Rgw, bucket: str, key: str) -> int:
    """Bytes in the stored parts of the upload of `key` (0 while there is none)."""
    client = rgw.client()
    found = [u for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    found = [u for u in found if u["Key"] == key]
    if not found:
        return 0
    parts = client.list_parts(Bucket=bucket, Key=key, UploadId=found[0]["UploadId"])
    return sum(p["Size"] for p in parts.get("Parts", []))


def run(rgw: Rgw, size_mb: int, cut: float, work: Path) -> dict[str, Any]:
    pool = create_pool(work, prefix="w8bench", size_mb=max(1024, 3 * size_mb))
    try:
        random_member(pool.name, pool.mountpoint, "erin", size_mb)
        bucket = f"w8-bench-{os.getpid()}"
        rgw.create_bucket(bucket)
        key = f"{PREFIX}/erin/elabfs-erin@{SNAP}.zst"
        aws = {"AWS_ACCESS_KEY_ID": rgw.access_key, "AWS_SECRET_ACCESS_KEY": rgw.secret_key}
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZFS_OFFSITE_")}
        env |= aws | {
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
            "ZFS_OFFSITE_SOURCE__POOL": pool.name,
            "ZFS_OFFSITE_TARGET__URL": f"s3://{bucket}/{PREFIX}",
            "ZFS_OFFSITE_TARGET__S3__ENDPOINT_URL": rgw.endpoint,
            "ZFS_OFFSITE_TARGET__S3__REGION": rgw.region,
        }
        first = subprocess.Popen([sys.executable, "-m", "tests.support.backup_once"], env=env)
        started = time.monotonic()
        while acknowledged(rgw, bucket, key) < cut * size_mb * MiB:
            if first.poll() is not None:
                raise SystemExit("the first run ended before the cut: raise --size-mb")
            time.sleep(0.05)
        first.kill()
        first.wait()
        cut_after = time.monotonic() - started
        stored_at_cut = acknowledged(rgw, bucket, key)

        os.environ.update(aws)
        sent: list[int] = []
        real = s3._session

        def counting(profile: str | None, keys: S3Keys | None = None) -> Any:
            session = real(profile, keys)
            session.events.register(
                "provide-client-params.s3.UploadPart",
                lambda params, **_: sent.append(len(params["Body"])),
            )
            return session

        s3._session = counting  # type: ignore[assignment]
        settings = load_settings(
            source={"pool": pool.name},
            target={
                "url": f"s3://{bucket}/{PREFIX}",
                "s3": {"endpoint_url": rgw.endpoint, "region": rgw.region},
            },
        )
        (member,) = discover_members(settings)
        began = time.monotonic()
        result = backup_member(settings, member)
        resume_seconds = time.monotonic() - began
        s3._session = real  # type: ignore[assignment]
        client = rgw.client()
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        digest = hashlib.sha256()
        size = 0
        for block in iter(lambda: body.read(8 * MiB), b""):
            digest.update(block)
            size += len(block)
        sidecar = client.get_object(Bucket=bucket, Key=key + ".sha256")["Body"].read().decode()
        assert sidecar.split()[0] == digest.hexdigest(), "the object does not match its sidecar"
        again = sum(b for b in sent if b >= MiB)  # the stream's parts, not the sidecars'
        return {
            "object_bytes": size,
            "cut_at_fraction": round(stored_at_cut / size, 3),
            "first_run_seconds": round(cut_after, 1),
            "resumed_bytes": result.stream.resumed_bytes if result.stream else 0,
            "sent_again_bytes": again,
            "sent_again_fraction": round(again / size, 3),
            "resume_seconds": round(resume_seconds, 1),
        }
    finally:
        pool.destroy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.s3_resume", description=__doc__)
    parser.add_argument("--size-mb", type=int, default=512, help="MiB of random data")
    parser.add_argument("--cut", type=float, default=0.8, help="fraction stored at the cut")
    parser.add_argument("--dir", type=Path, help="a running store's directory (rgw.json)")
    parser.add_argument("--port-base", type=int, help="the store's ports (a free block if unset)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    rgw = load(args.dir) if args.dir else start(port_base=args.port_base)
    try:
        with tempfile.TemporaryDirectory(prefix="w8-bench-") as work:
            figures = run(rgw, args.size_mb, args.cut, Path(work))
    finally:
        if not args.dir:
            stop(Path(rgw.directory))
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    verdict = "meets" if figures["sent_again_fraction"] < 0.30 else "MISSES"
    print(
        f"sent again after a cut at {args.cut:.0%}: {figures['sent_again_fraction']:.1%} "
        f"of the object ({verdict} the target: < 30 %)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
