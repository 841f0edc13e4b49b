"""Which S3 client uploads a stream best: boto3 against the other Python options and rclone.

The object-storage target (docs/explanation/object-storage-design.md) needs a
client with custom endpoints, multipart uploads driven by UploadId (so another
process can resume one), ListParts and conditional PUT. Candidates:

- boto3 (botocore, threads): all of them, public API; typed by types-boto3-s3.
- aiobotocore (botocore on aiohttp, asyncio): the same API, the same features.
- minio (urllib3, threads): multipart by UploadId and ListParts only through
  private methods (`_create_multipart_upload`, `_upload_part`, `_list_parts`).
- `rclone rcat` (Go; Debian's rclone): the reference the issue's bench compares with.

Each uploads the same N MiB, read from a pipe as `zfs send` gives it, in parts
of the same size with the same number in flight, to a real Ceph RGW (started
by tests/support/rgw.py unless --dir names a running one), in alternating
rounds; each upload is checked (size and multipart ETag by HEAD) and deleted.
Per client, medians: MB/s of the upload (1 MB = 1e6 bytes), CPU seconds per
GB of the whole process (import and start-up included: what the NAS pays) and
of the upload alone (rclone: the whole process), and peak RSS, with each
figure's ratio to boto3's.

Each client runs in a process of its own (its rusage is its own). The Python
clients other than boto3 are not project dependencies: run the bench with an
interpreter that has them, e.g. a scratch venv with `boto3 aiobotocore minio`:
`VENV/bin/python -m bench.s3_client --size-mb 256 --rounds 3` from the checkout
(a missing one is reported and skipped).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.rgw import Rgw, load, start, stop

MiB = 1 << 20
PYTHON_CLIENTS = ("boto3", "aiobotocore", "minio")
ALL_CLIENTS = (*PYTHON_CLIENTS, "rclone")


# ---------------------------------------------------------------------------- workers
# Each runs in its own process: stdin is the stream, argv[1] a JSON job; it prints the
# upload's wall and CPU seconds (all its threads) on stdout: the figures without start-up.


def read_parts(part: int) -> Any:
    source = sys.stdin.buffer
    while True:
        piece = source.read(part)
        if not piece:
            return
        yield piece


def work_boto3(job: dict[str, Any]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import boto3
    from botocore.config import Config

    rgw = Rgw(**job["rgw"])
    # As the target would build it: path-style, checksums only where S3 requires one
    # (RGW 16 predates botocore's default CRC32 trailers), a connection per part in flight.
    config = Config(
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        max_pool_connections=job["inflight"] + 2,
    )
    s3 = boto3.client(
        "s3",
        endpoint_url=rgw.endpoint,
        region_name=rgw.region,
        aws_access_key_id=rgw.access_key,
        aws_secret_access_key=rgw.secret_key,
        config=config,
    )
    bucket, key = rgw.bucket, job["key"]
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]

    def send(number: int, piece: bytes) -> dict[str, Any]:
        answer = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=piece
        )
        return {"PartNumber": number, "ETag": answer["ETag"]}

    parts = bounded_map(ThreadPoolExecutor(job["inflight"]), send, job)
    s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )


def bounded_map(pool: Any, send: Any, job: dict[str, Any]) -> list[Any]:
    """Parts in order, at most `inflight` sent at once and one more read: bounded memory."""
    from collections import deque

    pending: deque[Any] = deque()
    done = []
    with pool:
        for number, piece in enumerate(read_parts(job["part"]), start=1):
            if len(pending) >= job["inflight"]:
                done.append(pending.popleft().result())
            pending.append(pool.submit(send, number, piece))
        done += [future.result() for future in pending]
    return done


def work_aiobotocore(job: dict[str, Any]) -> None:
    import asyncio

    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    rgw = Rgw(**job["rgw"])

    async def main() -> None:
        config = AioConfig(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            max_pool_connections=job["inflight"] + 2,
        )
        async with get_session().create_client(
            "s3",
            endpoint_url=rgw.endpoint,
            region_name=rgw.region,
            aws_access_key_id=rgw.access_key,
            aws_secret_access_key=rgw.secret_key,
            config=config,
        ) as s3:
            bucket, key = rgw.bucket, job["key"]
            upload = (await s3.create_multipart_upload(Bucket=bucket, Key=key))["UploadId"]
            loop = asyncio.get_running_loop()
            slots = asyncio.Semaphore(job["inflight"])
            tasks = []

            async def send(number: int, piece: bytes) -> dict[str, Any]:
                try:
                    answer = await s3.upload_part(
                        Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=piece
                    )
                finally:
                    slots.release()
                return {"PartNumber": number, "ETag": answer["ETag"]}

            number = 0
            while True:
                await slots.acquire()
                piece = await loop.run_in_executor(None, sys.stdin.buffer.read, job["part"])
                if not piece:
                    slots.release()
                    break
                number += 1
                tasks.append(asyncio.create_task(send(number, piece)))
            parts = list(await asyncio.gather(*tasks))
            await s3.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
            )

    asyncio.run(main())


def work_minio(job: dict[str, Any]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from minio import Minio
    from minio.datatypes import Part

    rgw = Rgw(**job["rgw"])
    client = Minio(
        rgw.endpoint.removeprefix("http://"),
        access_key=rgw.access_key,
        secret_key=rgw.secret_key,
        secure=False,
        region=rgw.region,
    )
    bucket, key = rgw.bucket, job["key"]
    upload = client._create_multipart_upload(bucket, key, {})

    def send(number: int, piece: bytes) -> Any:
        return Part(number, client._upload_part(bucket, key, piece, None, upload, number))

    parts = bounded_map(ThreadPoolExecutor(job["inflight"]), send, job)
    client._complete_multipart_upload(bucket, key, upload, parts)


WORKERS = {"boto3": work_boto3, "aiobotocore": work_aiobotocore, "minio": work_minio}


def worker(name: str, job_text: str) -> None:
    job = json.loads(job_text)
    started, cpu = time.monotonic(), time.process_time()
    WORKERS[name](job)
    print(json.dumps({"seconds": time.monotonic() - started, "cpu": time.process_time() - cpu}))


# ---------------------------------------------------------------------------- the bench


def available(name: str) -> str | None:
    """Why `name` cannot run here; None when it can."""
    if name == "rclone":
        return None if shutil.which("rclone") else "no rclone (apt-get install rclone)"
    module = {"boto3": "boto3", "aiobotocore": "aiobotocore", "minio": "minio"}[name]
    probe = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True)
    return None if probe.returncode == 0 else f"{module} not installed in {sys.executable}"


def expected_etag(source: Path, part: int) -> str:
    digests = []
    with source.open("rb") as data:
        while piece := data.read(part):
            digests.append(hashlib.md5(piece).digest())
    return f'"{hashlib.md5(b"".join(digests)).hexdigest()}-{len(digests)}"'


def run_one(name: str, rgw: Rgw, source: Path, part: int, inflight: int) -> dict[str, float]:
    key = f"bench/{name}-{os.urandom(4).hex()}"
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    if name == "rclone":
        # Credentials in the environment, not on the command line (ps shows argv).
        env.update(
            RCLONE_S3_PROVIDER="Ceph",
            RCLONE_S3_ENDPOINT=rgw.endpoint,
            RCLONE_S3_ACCESS_KEY_ID=rgw.access_key,
            RCLONE_S3_SECRET_ACCESS_KEY=rgw.secret_key,
            RCLONE_S3_REGION=rgw.region,
            RCLONE_S3_FORCE_PATH_STYLE="true",
        )
        argv = [
            "rclone", "rcat", "-q", f"--s3-chunk-size={part // MiB}M",
            f"--s3-upload-concurrency={inflight}", f":s3:{rgw.bucket}/{key}",
        ]  # fmt: skip
    else:
        job = {"rgw": rgw.__dict__, "key": key, "part": part, "inflight": inflight}
        argv = [sys.executable, "-m", "bench.s3_client", "--worker", name, json.dumps(job)]
    feeder = subprocess.Popen(["cat", str(source)], stdout=subprocess.PIPE)
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdin=feeder.stdout, stdout=subprocess.PIPE, env=env)
    assert feeder.stdout is not None
    feeder.stdout.close()
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    feeder.wait()
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed (exit {proc.returncode})")
    whole_cpu = usage.ru_utime + usage.ru_stime
    upload, cpu = (wall, whole_cpu) if name == "rclone" else json.loads(out).values()
    s3 = rgw.client()
    head = s3.head_object(Bucket=rgw.bucket, Key=key)
    size = source.stat().st_size
    if head["ContentLength"] != size or head["ETag"] != expected_etag(source, part):
        raise SystemExit(f"{name}: the stored object is not the stream ({head['ETag']})")
    s3.delete_object(Bucket=rgw.bucket, Key=key)
    return {
        "mb_s": size / 1e6 / upload,
        "cpu_s_gb": whole_cpu / (size / 1e9),
        "upload_cpu_s_gb": cpu / (size / 1e9),
        "rss_mb": usage.ru_maxrss / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.s3_client", description=__doc__)
    parser.add_argument("--size-mb", type=int, default=256, help="MiB uploaded per run")
    parser.add_argument("--part-mb", type=int, default=16, help="part size, MiB")
    parser.add_argument("--inflight", type=int, default=2, help="parts in flight")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", default=",".join(ALL_CLIENTS))
    parser.add_argument("--dir", type=Path, help="a running store's directory (rgw.json)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return 0
    names = [n for n in args.clients.split(",") if n]
    skipped = {n: why for n in names if (why := available(n))}
    for name, why in skipped.items():
        print(f"skipping {name}: {why}")
    names = [n for n in names if n not in skipped]
    rgw = load(args.dir) if args.dir else start()
    scratch = Path(tempfile.mkdtemp(prefix="s3-client-bench-"))
    try:
        source = scratch / "stream"
        with source.open("wb") as data:
            for _ in range(args.size_mb):
                data.write(os.urandom(MiB))
        runs: dict[str, list[dict[str, float]]] = {n: [] for n in names}
        for round_ in range(args.rounds):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for name in order:
                runs[name].append(run_one(name, rgw, source, args.part_mb * MiB, args.inflight))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if not args.dir:
            stop(Path(rgw.directory))
    report(runs, args)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))
    return 0


def report(runs: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    medians = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in runs.items()}
    base = medians.get("boto3")
    print(
        f"{args.size_mb} MiB from a pipe, {args.part_mb} MiB parts, {args.inflight} in flight, "
        f"median of {args.rounds}; ratio to boto3 in brackets"
    )
    keys = ("mb_s", "cpu_s_gb", "upload_cpu_s_gb", "rss_mb")
    heads = ("MB/s", "CPU-s/GB", "upload CPU-s/GB", "peak RSS MB")
    print(f"{'client':<12}" + "".join(f"{head:>18}" for head in heads))
    for name, m in medians.items():
        cells = []
        for key in keys:
            ratio = f"({m[key] / base[key]:.2f}x)" if base else ""
            cells.append(f"{m[key]:>9.1f} {ratio:>8}")
        print(f"{name:<12}" + "".join(f"{cell:>18}" for cell in cells))
    print("CPU-s/GB: the whole process (start-up included); upload CPU-s/GB: the upload only")


if __name__ == "__main__":
    sys.exit(main())
