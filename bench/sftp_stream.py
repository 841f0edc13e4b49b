"""The SFTP stream paths without zfs: backup and restore of one send stream, ours vs the shell.

A stream file (`--stream`: a captured `zfs send`; by default one made here of
half random, half text-like data closed by an END record) stands in for the
send, and `cat > /dev/null` for `zfs receive`, so what is measured is the path
this tool owns: compressing, hashing, SFTP through `ssh`, reading back,
checking, decompressing, and the pipes. zfs-fuse is neither needed nor
counted (bench.throughput and bench.restore measure the whole thing).

Backup: ours (a resumable upload, as a night runs it) against
`cat f | zstd -3 -T2 | ssh … 'cat > f.zst'` and the same with `tee` into `sha256sum`.
Restore: ours (read ahead, sha256, zstd -d into the pipe) against
`ssh … cat f.zst | zstd -d | cat > /dev/null`. Each round runs every path once,
in an order rotated per round; figures are medians. `--baseline DIR` adds ours
from another checkout (`git archive REV | tar -x -C DIR`) to the same rounds;
`--extra DIR` (repeatable) adds more checkouts to the backup rounds only.
`--raw-ceiling` adds the same reading, compressing and hashing written into a
raw `ssh host 'cat > f'` channel: what the stream would cost without SFTP
(framing, acknowledged writes, fsyncs), a ceiling to compare with, not a path
the product could take (an SFTP-only account has no shell).
`--floor` adds `bench/floor.c` (compiled here: `cc`, libzstd-dev and
libssl-dev), the least one process can do for the same contract: zstd with
the product's parameters and the sha256 of the stored bytes in C, written into
a raw `ssh cat`, with and without the hash. Whatever ours adds (SFTP, fsyncs,
checkpoints, Python) comes on top of it.

Run as root: `.venv/bin/python -m bench.sftp_stream --size-mb 256 --rounds 5`.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.throughput import MB, make_data, run_shell, summed_shell
from tests.support.services import SshServer, start_sshd

GB = 1e9
END_RECORD = struct.pack("<I", 5) + bytes(308)  # DRR_END: all the pipeline checks of a stream

BACKUP_CHILD = r"""
import json, resource, sys, time
from bench.cpu import rusage_cpu
from zfs_offsite.archive.names import Compression
from zfs_offsite.connect import open_store
from zfs_offsite.settings import load_settings
from zfs_offsite.stream.checkpoints import StreamIdentity
from zfs_offsite.stream.compression import compressor
from zfs_offsite.stream.upload import Resumable, stream_to_store
from zfs_offsite.zfs.runner import LocalRunner

spec = json.loads(sys.argv[1])
s = load_settings(target=spec["target"])
level, threads = s.compression.effective_level, s.compression.threads
argv = ["cat", spec["stream"]]
def start():
    return LocalRunner().start(argv), compressor(Compression.ZSTD, level, threads)
identity = StreamIdentity(dataset="bench", snapshot_guid=0, base_guid=None, send_argv=tuple(argv),
                          raw=False, compression="zstd", level=level, threads=threads)
cpu0 = rusage_cpu(resource.RUSAGE_SELF) + rusage_cpu(resource.RUSAGE_CHILDREN)
t0 = time.monotonic()
store = open_store(s.target)
r = stream_to_store(*start(), store, "ours.zst", resume=Resumable(identity, start))
store.remove(r.partial)
if r.checkpoints:
    store.remove(r.checkpoints)
store.close()
print(json.dumps({"seconds": time.monotonic() - t0, "stored": r.stored_bytes,
    "cpu": rusage_cpu(resource.RUSAGE_SELF) + rusage_cpu(resource.RUSAGE_CHILDREN) - cpu0,
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

# The ceiling of a channel without SFTP (`--raw-ceiling`): ours' shape (a thread reading,
# compressing and hashing, handing to one writing) into `ssh host 'cat > f'`. Not a
# product path: no framing, no acknowledged writes, no fsync, no checkpoints, no resume.
RAW_CHILD = r"""
import hashlib, json, queue, resource, subprocess, sys, threading, time
from bench.cpu import rusage_cpu
from zfs_offsite.archive.names import Compression
from zfs_offsite.settings import load_settings
from zfs_offsite.stream.compression import compressor
from zfs_offsite.zfs.runner import LocalRunner

spec = json.loads(sys.argv[1])
s = load_settings(target=spec["target"])
cpu0 = rusage_cpu(resource.RUSAGE_SELF) + rusage_cpu(resource.RUSAGE_CHILDREN)
t0 = time.monotonic()
ssh = subprocess.Popen(spec["ssh"], stdin=subprocess.PIPE, pipesize=1 << 20)
send = LocalRunner().start(["cat", spec["stream"]])
packer = compressor(Compression.ZSTD, s.compression.effective_level, s.compression.threads)
digest, pieces, stored = hashlib.sha256(), queue.Queue(8), 0
def produce():
    while chunk := send.stdout.read(1 << 20):
        out = packer.compress(chunk)
        digest.update(out)
        pieces.put(out)
    out = packer.finish()
    digest.update(out)
    pieces.put(out)
    pieces.put(None)
threading.Thread(target=produce, daemon=True).start()
while (piece := pieces.get()) is not None:
    ssh.stdin.write(piece)
    stored += len(piece)
ssh.stdin.close()
if ssh.wait() != 0 or send.wait() != 0:
    sys.exit("the raw channel failed")
digest.hexdigest()
print(json.dumps({"seconds": time.monotonic() - t0, "stored": stored,
    "cpu": rusage_cpu(resource.RUSAGE_SELF) + rusage_cpu(resource.RUSAGE_CHILDREN) - cpu0,
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

RESTORE_CHILD = r"""
import json, resource, sys, time
from types import SimpleNamespace
from bench.cpu import rusage_cpu
from zfs_offsite.archive.names import Compression
from zfs_offsite.connect import open_store
from zfs_offsite.jobs.restore import receive_file
from zfs_offsite.settings import load_settings
from zfs_offsite.zfs.runner import LocalRunner

spec = json.loads(sys.argv[1])
s = load_settings(target=spec["target"])
# The stored file as restore sees it; no sidecar, so size and sha256 are computed, not compared.
name = SimpleNamespace(compression=Compression.ZSTD, encrypted=False)
file = SimpleNamespace(filename="stream.zst", name=name, sidecar=None, has_sidecar=False)
cpu0 = rusage_cpu(resource.RUSAGE_SELF) + rusage_cpu(resource.RUSAGE_CHILDREN)
t0 = time.monotonic()
store = open_store(s.target)
sink = LocalRunner().start(["sh", "-c", "cat > /dev/null"], stdin=True)
receive_file(store, "m", file, sink)
sink.wait()
store.close()
print(json.dumps({"seconds": time.monotonic() - t0,
    "cpu": rusage_cpu(resource.RUSAGE_SELF) + rusage_cpu(resource.RUSAGE_CHILDREN) - cpu0,
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_stream(path: Path, size_mb: int) -> None:
    """Mixed data (bench.throughput's) as one file, closed by a send stream's END record."""
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        make_data(Path(scratch), size_mb)
        with path.open("wb") as out:
            for part in ("random.bin", "log.txt"):
                with (Path(scratch) / part).open("rb") as data:
                    shutil.copyfileobj(data, out, MB)
            out.write(END_RECORD)


def run_child(code: str, spec: dict, checkout: Path | None) -> dict:
    """Ours in a child process, from `checkout` (another version's tree) if given."""
    argv = [sys.executable, "-c", code, json.dumps(spec)]
    # `-c` puts the working directory first on sys.path: its zfs_offsite is the one run.
    done = subprocess.run(argv, capture_output=True, text=True, cwd=checkout or Path.cwd())
    if done.returncode != 0:
        sys.exit(f"bench.sftp_stream: ours failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def paths_for(
    args: argparse.Namespace, sshd: SshServer, archive: Path, stream: Path, work: Path
) -> tuple[dict[str, Callable[[], dict]], dict[str, Callable[[], dict]]]:
    url = f"sftp://{sshd.user}@127.0.0.1:{sshd.port}"
    target = {"key_file": str(sshd.client_key), "known_hosts": str(sshd.known_hosts)}
    ssh = (
        f"ssh -i {sshd.client_key} -p {sshd.port} -o UserKnownHostsFile={sshd.known_hosts} "
        f"-c aes128-gcm@openssh.com {sshd.user}@127.0.0.1"
    )
    up = {"target": target | {"url": f"{url}{archive}"}, "stream": str(stream)}
    down = {"target": target | {"url": f"{url}{archive}"}}
    backup: dict[str, Callable[[], dict]] = {
        "ours": lambda: run_child(BACKUP_CHILD, up, None),
        "shell zstd|ssh": lambda: run_shell(
            ["sh", "-c", f"cat {stream} | zstd -3 -T2 -q | {ssh} 'cat > {archive}/f.zst'"],
            archive / "f.zst",
        ),
        "shell +sha256sum": lambda: run_shell(
            ["sh", "-c", summed_shell(f"cat {stream}", ssh, work, archive / "f.zst")],
            archive / "f.zst",
        ),
    }
    restore: dict[str, Callable[[], dict]] = {
        "ours": lambda: run_child(RESTORE_CHILD, down, None),
        "shell ssh cat|zstd -d": lambda: run_shell(
            ["sh", "-c", f"{ssh} cat {archive}/m/stream.zst | zstd -d -q | cat > /dev/null"],
            None,
        ),
    }
    if args.baseline:
        backup["baseline"] = lambda: run_child(BACKUP_CHILD, up, args.baseline)
        restore["baseline"] = lambda: run_child(RESTORE_CHILD, down, args.baseline)
    if args.raw_ceiling:
        channel = [*shlex.split(ssh), f"cat > {archive}/raw.zst"]
        raw = {"target": up["target"], "stream": str(stream), "ssh": channel}
        backup["ours' shape | ssh cat"] = lambda: run_child(RAW_CHILD, raw, None)
    if args.floor:
        floor = build_floor(work)
        for name, mode in (("C floor +sha256", ""), ("C floor, no hash", "nohash")):
            out = archive / f"floor-{mode or 'hash'}.zst"
            command = f"cat {stream} | {floor} {work}/floor.sha256 {mode} | {ssh} 'cat > {out}'"
            backup[name] = functools.partial(run_shell, ["sh", "-c", command], out)
    for extra in args.extra:
        backup[extra.name] = functools.partial(run_child, BACKUP_CHILD, up, extra)
    return backup, restore


def build_floor(work: Path) -> Path:
    """bench/floor.c compiled against the system's libzstd and libcrypto, or one line why not."""
    binary = work / "floor"
    source = Path(__file__).with_name("floor.c")
    argv = ["cc", "-O2", "-o", str(binary), str(source), "-lzstd", "-lcrypto"]
    try:
        subprocess.run(argv, check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        why = (getattr(exc, "stderr", "") or str(exc)).strip().splitlines()[0]
        sys.exit(
            f"bench.sftp_stream --floor: cannot build {source.name} ({why}):"
            " apt-get install gcc libzstd-dev libssl-dev"
        )
    return binary


def rounds(paths: dict[str, Callable[[], dict]], count: int, raw: int, what: str) -> dict:
    """Every path once per round, the order rotated; medians of MB/s and CPU-s/GB."""
    runs: dict[str, list[dict]] = {name: [] for name in paths}
    names = list(paths)
    for round_no in range(count):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            result = paths[name]()
            runs[name].append(result)
            print(
                f"  round {round_no + 1} {what} {name:22} {raw / 1e6 / result['seconds']:7.1f} MB/s"
                f" cpu {result['cpu']:5.2f}s",
                file=sys.stderr,
            )
    return {
        name: {
            "mb_s": statistics.median(raw / 1e6 / r["seconds"] for r in found),
            "cpu_s_per_gb": statistics.median(r["cpu"] / (raw / GB) for r in found),
            "rss_mb": max(r["rss_mb"] for r in found),
        }
        for name, found in runs.items()
    }


def show(what: str, table: dict, shell: str) -> None:
    base = table[shell]
    print(f"{what:8} {'path':22} {'MB/s':>7} {'CPU-s/GB':>9} {'RSS MB':>7}  vs {shell}")
    for name, r in table.items():
        speed, cpu = r["mb_s"] / base["mb_s"], r["cpu_s_per_gb"] / base["cpu_s_per_gb"]
        print(
            f"{what:8} {name:22} {r['mb_s']:7.1f} {r['cpu_s_per_gb']:9.2f} {r['rss_mb']:7.1f}"
            f"  {speed:.2f}x MB/s, {cpu:.2f}x CPU"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stream", type=Path, help="a captured `zfs send` stream to use")
    parser.add_argument("--baseline", type=Path, help="another checkout's tree, run alongside")
    parser.add_argument(
        "--raw-ceiling",
        action="store_true",
        help="add ours' read, zstd and sha256 into a raw `ssh cat` (no SFTP): a ceiling only",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="add bench/floor.c: zstd and sha256 in C into a raw `ssh cat`, the contract's floor",
    )
    parser.add_argument(
        "--extra",
        type=Path,
        action="append",
        default=[],
        help="more checkouts, backup only (variants measured in the same rounds)",
    )
    parser.add_argument("--json", type=Path, help="write all figures here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench.sftp_stream: run as root (it starts an sshd as the test user)")
    work = Path(tempfile.mkdtemp(prefix="zfs-offsite-bench-", dir="/var/tmp"))
    work.chmod(0o755)  # sshd reads authorized_keys below it as the test user
    sshd = start_sshd(work / "sshd")
    archive = Path(f"/home/{sshd.user}/bench-sftp-stream-{os.getpid()}")
    try:
        (archive / "m").mkdir(parents=True)
        stream = args.stream or work / "stream.zfs"
        if args.stream is None:
            make_stream(stream, args.size_mb)
        raw = stream.stat().st_size
        with (archive / "m" / "stream.zst").open("wb") as stored:
            subprocess.run(
                ["zstd", "-3", "-T2", "-q", "-c", str(stream)], stdout=stored, check=True
            )
        subprocess.run(["chown", "-R", sshd.user, str(archive)], check=True)
        backup, restore = paths_for(args, sshd, archive, stream, work)
        backed = rounds(backup, args.rounds, raw, "backup")
        restored = rounds(restore, args.rounds, raw, "restore")
        print(f"stream: {raw / MB:.0f} MiB raw, {args.rounds} rotated rounds, medians")
        show("backup", backed, "shell zstd|ssh")
        show("restore", restored, "shell ssh cat|zstd -d")
        if args.json:
            figures = {"raw_bytes": raw, "backup": backed, "restore": restored}
            args.json.write_text(json.dumps(figures, indent=2) + "\n")
    finally:
        sshd.stop()
        shutil.rmtree(archive, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
