"""Stream one snapshot four ways, in alternating rounds, and compare speed, CPU and memory.

1. ours zstd: zfs-offsite's pipeline (zstd, default settings) over SFTP to a loopback sshd
2. shell:     `zfs send | zstd -3 -T2 | ssh -c aes128-gcm@openssh.com host 'cat > f'`
   (and, with `--summed-shell`, the same with `tee` into `sha256sum`: the shell way to
   also write the `.sha256` the archive keeps beside each file, which ours computes)
3. ours gzip: the same pipeline with gzip (isal)
4. seed:      `zfs send | gzip > f` (the seed script's path, local file)

Each round runs every path once, in an order rotated per round, so load from
other users of a shared machine falls on all of them alike; figures are the
medians over the rounds. For each path: MB/s and CPU seconds per GB of raw
stream (1 GB = 1e9 bytes), the compression ratio (raw / stored) and peak RSS.
CPU counts the path's own processes on the sending side: for ours the Python
process and its children (`zfs send`, the `ssh` carrying SFTP), for the shell
pipelines all of their processes; zfs-fuse's daemon, where the send really
runs, is read from /proc before and after each run and added to every path
alike ("+zfs" column). The backup server's side (the loopback sshd) is not
counted: it is not the NAS's CPU.

Ours is timed inside its own child process, from before the SSH connection to
the closed file: Python's start-up (about a second of imports, once per night)
is left out; the shell's time includes its `ssh` handshake. Ours runs the path
a night runs: a resumable upload, which records a checkpoint per 64 MiB.

`--source replay` feeds every path the same send stream, captured once into
RAM (/dev/shm), through `cat` instead of `zfs send`: this shows what the
pipelines themselves can carry when the send is not the ceiling (zfs-fuse
sends at about 190 MB/s here; a kernel OpenZFS on a NAS can send faster).

Run as root: `.venv/bin/python -m bench.throughput --size-mb 1024 --rounds 3`.
`--rss-sizes 4096` adds single runs of ours at larger streams for the
flat-memory check; `--json FILE` writes all figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.cpu import ThreadWatch, proc_cpu, rusage_cpu, settle, zfs_fuse_pid
from bench.loopback import Loopback, loopback
from tests.support.zfsdata import create_member, destroy_dataset, snapshot

MB = 1024 * 1024
MIN_ROUNDS = 3  # a median of fewer rounds is one run's luck on a shared machine
GB = 1e9

OURS_ZSTD = "ours zstd (sftp)"
SHELL = "shell zstd|ssh"
SHELL_SUMMED = "shell +sha256sum"
OURS_GZIP = "ours gzip (sftp)"
SEED = "seed send|gzip>f"
BASE_ZSTD = "baseline zstd"
BASE_GZIP = "baseline gzip"


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


def child_main(spec: dict) -> None:
    """Ours, in a child process of its own: time, CPU and peak RSS of the pipeline alone."""
    from resource import RUSAGE_CHILDREN, RUSAGE_SELF

    from zfs_offsite.archive.names import Compression
    from zfs_offsite.connect import open_store
    from zfs_offsite.settings import load_settings
    from zfs_offsite.stream.compression import compressor
    from zfs_offsite.stream.upload import Resumable, stream_to_store
    from zfs_offsite.zfs.commands import send_argv
    from zfs_offsite.zfs.runner import LocalRunner

    try:  # a baseline checkout from before resumable uploads runs without them
        from zfs_offsite.stream.checkpoints import StreamIdentity
    except ImportError:
        StreamIdentity = None

    settings = load_settings(
        target=spec["target"], compression={"algorithm": spec["algo"], **spec["compression"]}
    )
    watch = ThreadWatch() if spec["profile"] else None
    cpu_start = rusage_cpu(RUSAGE_SELF) + rusage_cpu(RUSAGE_CHILDREN)
    start = time.monotonic()
    if watch:
        watch.start()
    store = open_store(settings.target)
    if hasattr(store, "create_root"):  # makedirs never makes the root (a baseline's did)
        store.create_root()
    store.makedirs("bench")
    argv = spec.get("send_argv") or send_argv(spec["snapshot"])
    kind = Compression(spec["algo"])
    level = settings.compression.effective_level
    threads = settings.compression.threads

    def send_and_compress():  # type: ignore[no-untyped-def]
        return LocalRunner().start(argv), compressor(kind, level, threads)

    resume = {}
    if StreamIdentity is not None:
        identity = StreamIdentity(
            dataset=spec["snapshot"].split("@")[0],
            snapshot_guid=0,  # the bench's stream is never resumed; the header just records it
            base_guid=None,
            send_argv=tuple(argv),
            raw=False,
            compression=kind.value,
            level=level,
            threads=threads,
        )
        resume = {"resume": Resumable(identity, send_and_compress)}
    result = stream_to_store(*send_and_compress(), store, f"bench/ours-{spec['algo']}", **resume)
    store.remove(result.partial)
    if result.checkpoints:
        store.remove(result.checkpoints)
    store.close()
    seconds = time.monotonic() - start
    threads = watch.stop() if watch else {}
    cpu = rusage_cpu(RUSAGE_SELF) + rusage_cpu(RUSAGE_CHILDREN) - cpu_start
    report = {
        "raw": result.raw_bytes,
        "stored": result.stored_bytes,
        "seconds": seconds,
        "cpu": cpu,
        "rss_mb": resource.getrusage(RUSAGE_SELF).ru_maxrss / 1024,
        "threads": threads,
    }
    print(json.dumps(report))


def run_ours(
    env: Loopback, snap: str, algo: str, args: argparse.Namespace, checkout: Path | None = None
) -> dict:
    """Ours in a child process; from `checkout` (another version's tree) for before/after."""
    spec = {
        "target": {
            "url": env.sftp_url,
            "key_file": str(env.sshd.client_key),
            "known_hosts": str(env.sshd.known_hosts),
        },
        "algo": algo,
        # The baseline runs with its own defaults; --zstd-threads is an experiment on ours.
        "compression": {"threads": args.zstd_threads} if args.zstd_threads and not checkout else {},
        "snapshot": snap,
        "send_argv": ["cat", str(args.replay)] if args.replay else None,
        "profile": args.profile,
    }
    argv = [sys.executable, "-m", "bench.throughput", "--child", json.dumps(spec)]
    # `-m` puts the working directory first on sys.path: its zfs_offsite is the one run.
    out = subprocess.run(argv, check=True, capture_output=True, text=True, cwd=checkout)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def summed_shell(source: str, ssh: str, work: Path, stored: Path) -> str:
    """`source | zstd | ssh cat`, with sha256sum reading a copy through a FIFO: a waited job.

    Not `tee >(sha256sum)`: bash does not wait for a process substitution, so its
    CPU reached no rusage (0.57 CPU-s counted of 1.11 by `perf stat`, 256 MiB).
    """
    fifo = work / "sum.fifo"
    return (
        f"rm -f {fifo} && mkfifo {fifo} && {{ sha256sum < {fifo} > {work}/f.zst.sha256 & "
        f"{source} | zstd -3 -T2 -q | tee {fifo} | {ssh} 'cat > {stored}'; wait; }}"
    )


def run_shell(argv: list[str], output: Path | None) -> dict:
    """A shell pipeline under a wrapper that waits: wall time, CPU and peak RSS of all of it.

    `output` is the file the pipeline writes (its size is the stored bytes, and it is removed);
    None for a pipeline that writes no file, such as a restore into `zfs receive`.
    """
    wrapper = (
        "import json, resource, subprocess, sys, time\n"
        "start = time.monotonic()\n"
        "subprocess.run(sys.argv[1:], check=True)\n"
        "seconds = time.monotonic() - start\n"
        "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(json.dumps({'seconds': seconds, 'cpu': u.ru_utime + u.ru_stime,"
        " 'rss_mb': u.ru_maxrss / 1024}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *argv], check=True, capture_output=True, text=True
    )
    result = dict(json.loads(out.stdout.strip().splitlines()[-1]))
    if output is not None:
        result["stored"] = output.stat().st_size
        output.unlink()
    return result


def measured(run: Callable[[], dict], sshd_pid: int, zfs_pid: int | None) -> dict:
    """One run with the zfs-fuse daemon's CPU around it; the sshd's sessions are let end."""
    zfs_before = proc_cpu(zfs_pid) if zfs_pid else 0.0
    result = run()
    settle(sshd_pid)  # the server's session processes exit just after the client
    result["zfs_cpu"] = (proc_cpu(zfs_pid) - zfs_before) if zfs_pid else 0.0
    return result


def summarize(runs: list[dict], raw: int) -> dict:
    """Medians over the rounds of one path."""

    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    gb = raw / GB
    return {
        "rounds": len(runs),
        "mb_s": statistics.median(raw / 1e6 / r["seconds"] for r in runs),
        "cpu_s_per_gb": statistics.median(r["cpu"] / gb for r in runs),
        "cpu_s_per_gb_with_zfs": statistics.median((r["cpu"] + r["zfs_cpu"]) / gb for r in runs),
        "zfs_cpu_s_per_gb": med("zfs_cpu") / gb,
        "ratio": statistics.median(raw / r["stored"] for r in runs),
        "rss_mb": max(r["rss_mb"] for r in runs),
        "runs": runs,
    }


def send_size(snap: str) -> int:
    """The raw stream's bytes: `zfs send` read through here (argv only: no shell sees the name)."""
    size = 0
    with subprocess.Popen(["zfs", "send", snap], stdout=subprocess.PIPE) as send:
        assert send.stdout is not None
        while chunk := send.stdout.read(MB):
            size += len(chunk)
    if send.returncode != 0:
        raise subprocess.CalledProcessError(send.returncode, send.args)
    return size


def prepare(env: Loopback, name: str, size_mb: int) -> tuple[str, int]:
    """A member dataset with `size_mb` of mixed data, snapshotted; its stream read once (warm)."""
    dataset = create_member(env.pool.name, name)
    make_data(env.pool.mountpoint / f"elabfs-{name}", size_mb)
    snapshot(dataset, "bench")
    snap = f"{dataset}@bench"
    return snap, send_size(snap)


def compare(env: Loopback, snap: str, raw: int, args: argparse.Namespace) -> dict:
    ssh = env.ssh_command()
    send = f"cat {args.replay}" if args.replay else f"zfs send {snap}"
    paths: dict[str, Callable[[], dict]] = {
        OURS_ZSTD: lambda: run_ours(env, snap, "zstd", args),
        SHELL: lambda: run_shell(
            ["sh", "-c", f"{send} | zstd -3 -T2 -q | {ssh} 'cat > {env.archive}/f.zst'"],
            env.archive / "f.zst",
        ),
        SHELL_SUMMED: lambda: run_shell(
            ["sh", "-c", summed_shell(send, ssh, env.work, env.archive / "f.zst")],
            env.archive / "f.zst",
        ),
        OURS_GZIP: lambda: run_ours(env, snap, "gzip", args),
        SEED: lambda: run_shell(
            ["sh", "-c", f"{send} | gzip > {env.work}/seed.gz"], env.work / "seed.gz"
        ),
    }
    if args.baseline:
        base = args.baseline
        paths[BASE_ZSTD] = lambda: run_ours(env, snap, "zstd", args, base)
        if not args.only_zstd:
            paths[BASE_GZIP] = lambda: run_ours(env, snap, "gzip", args, base)
    for extra in args.extra:
        paths[f"zstd {extra.name}"] = lambda extra=extra: run_ours(env, snap, "zstd", args, extra)
    if args.skip_seed:
        del paths[SEED]
    if not args.summed_shell:
        del paths[SHELL_SUMMED]
    if args.only_zstd:
        keep = (OURS_ZSTD, SHELL, SHELL_SUMMED, BASE_ZSTD, *(f"zstd {e.name}" for e in args.extra))
        paths = {k: v for k, v in paths.items() if k in keep}
    zfs_pid = zfs_fuse_pid()
    sshd_pid = env.sshd.process.pid
    runs: dict[str, list[dict]] = {name: [] for name in paths}
    names = list(paths)
    for round_no in range(args.rounds):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            result = measured(paths[name], sshd_pid, zfs_pid)
            runs[name].append(result)
            print(
                f"  round {round_no + 1} {name:18} {raw / 1e6 / result['seconds']:7.1f} MB/s"
                f" cpu {result['cpu']:6.1f}s zfs-fuse {result['zfs_cpu']:5.1f}s",
                file=sys.stderr,
            )
    return {name: summarize(r, raw) for name, r in runs.items()}


def ratios(table: dict) -> dict:
    """The issue's targets as ratios of medians."""
    found: dict[str, float] = {}
    ours, shell = table.get(OURS_ZSTD), table.get(SHELL)
    if ours and shell:
        found["zstd_mb_s_vs_shell"] = ours["mb_s"] / shell["mb_s"]
        found["zstd_cpu_vs_shell"] = ours["cpu_s_per_gb"] / shell["cpu_s_per_gb"]
        found["zstd_cpu_with_zfs_vs_shell"] = (
            ours["cpu_s_per_gb_with_zfs"] / shell["cpu_s_per_gb_with_zfs"]
        )
        found["zstd_ratio_difference"] = ours["ratio"] / shell["ratio"] - 1
    if ours and SHELL_SUMMED in table:
        summed = table[SHELL_SUMMED]
        found["zstd_mb_s_vs_summed_shell"] = ours["mb_s"] / summed["mb_s"]
        found["zstd_cpu_vs_summed_shell"] = ours["cpu_s_per_gb"] / summed["cpu_s_per_gb"]
    if OURS_GZIP in table and SEED in table:
        found["gzip_mb_s_vs_seed"] = table[OURS_GZIP]["mb_s"] / table[SEED]["mb_s"]
    for name, base in ((OURS_ZSTD, BASE_ZSTD), (OURS_GZIP, BASE_GZIP)):
        if name in table and base in table:
            algo = name.split()[1]
            found[f"{algo}_mb_s_vs_baseline"] = table[name]["mb_s"] / table[base]["mb_s"]
            found[f"{algo}_cpu_vs_baseline"] = (
                table[name]["cpu_s_per_gb"] / table[base]["cpu_s_per_gb"]
            )
    return found


def print_table(raw: int, table: dict, found: dict, rounds: int) -> None:
    few = "" if rounds >= MIN_ROUNDS else f" (fewer than {MIN_ROUNDS}: a quick check, not figures)"
    print(f"stream: {raw / MB:.0f} MiB raw, {rounds} alternating rounds, medians{few}")
    print(f"{'path':20} {'MB/s':>7} {'CPU-s/GB':>9} {'+zfs':>7} {'ratio':>6} {'RSS MB':>7}")
    for name, r in table.items():
        print(
            f"{name:20} {r['mb_s']:7.1f} {r['cpu_s_per_gb']:9.2f} {r['cpu_s_per_gb_with_zfs']:7.2f}"
            f" {r['ratio']:6.3f} {r['rss_mb']:7.1f}"
        )
    targets = {
        "zstd_mb_s_vs_shell": ("ours zstd MB/s / shell", ">= 1.0"),
        "zstd_cpu_vs_shell": ("ours zstd CPU-s/GB / shell", "<= 1.0"),
        "zstd_cpu_with_zfs_vs_shell": ("  the same, zfs-fuse included", "<= 1.0"),
        "zstd_ratio_difference": ("compression ratio, ours vs shell", "within +-5 %"),
        "zstd_mb_s_vs_summed_shell": ("ours zstd MB/s / shell +sha256sum", "like for like"),
        "zstd_cpu_vs_summed_shell": ("ours zstd CPU-s/GB / shell +sha256sum", "like for like"),
        "gzip_mb_s_vs_seed": ("ours gzip MB/s / seed", ">= 5"),
        "zstd_mb_s_vs_baseline": ("ours zstd MB/s / baseline", "after/before"),
        "zstd_cpu_vs_baseline": ("ours zstd CPU-s/GB / baseline", "after/before"),
        "gzip_mb_s_vs_baseline": ("ours gzip MB/s / baseline", "after/before"),
        "gzip_cpu_vs_baseline": ("ours gzip CPU-s/GB / baseline", "after/before"),
    }
    for key, (label, target) in targets.items():
        if key in found:
            value = found[key]
            shown = f"{value * 100:+.1f} %" if key == "zstd_ratio_difference" else f"{value:.2f}x"
            print(f"{label:40} {shown:>9}  (target {target})")


def rss_check(env: Loopback, sizes: list[int], args: argparse.Namespace) -> dict:
    """Single runs of ours at larger streams: peak RSS must stay flat."""
    found = {}
    for size in sizes:
        snap, raw = prepare(env, f"rss{size}", size)
        for algo in ("zstd", "gzip"):
            result = run_ours(env, snap, algo, args)
            found[f"{algo} {raw / MB:.0f} MiB"] = result["rss_mb"]
            print(f"peak RSS, ours {algo} at {raw / MB:.0f} MiB: {result['rss_mb']:.1f} MB")
        destroy_dataset(snap.split("@")[0])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-seed", action="store_true", help="skip the slow gzip -6 path")
    parser.add_argument("--only-zstd", action="store_true", help="ours zstd and the shell only")
    parser.add_argument(
        "--summed-shell", action="store_true", help="add the shell pipeline with sha256sum"
    )
    parser.add_argument("--rss-sizes", type=int, nargs="*", default=[], metavar="MB")
    parser.add_argument("--zstd-threads", type=int, default=0, help="compression.threads")
    parser.add_argument("--profile", action="store_true", help="CPU per thread of ours")
    parser.add_argument("--json", type=Path, help="write all figures here")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a checkout of another version (`git archive REV | tar -x -C DIR`): its pipeline "
        "runs as an extra path in the same rounds, for before/after",
    )
    parser.add_argument(
        "--extra", type=Path, action="append", default=[], help="more checkouts (zstd only)"
    )
    parser.add_argument(
        "--source",
        choices=("send", "replay"),
        default="send",
        help="replay: every path reads the same send stream from RAM instead of `zfs send`",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.replay = None
    if args.child:
        child_main(json.loads(args.child))
        return
    if os.geteuid() != 0:
        sys.exit("bench.throughput: run as root (it creates a zfs-fuse pool and an sshd)")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1 (3 or more for medians to rely on)")
    if args.rounds < MIN_ROUNDS:
        print(
            f"note: --rounds {args.rounds}: medians need at least {MIN_ROUNDS} rounds; "
            "this is a quick check, not figures to quote"
        )
    pool_mb = args.size_mb * 2 + max(args.rss_sizes, default=0) * 2 + 512
    with loopback("throughput", pool_mb) as env:
        snap, raw = prepare(env, "bench", args.size_mb)
        if args.source == "replay":
            args.replay = Path(f"/dev/shm/zfs-offsite-bench-{os.getpid()}.zfs")
            with args.replay.open("wb") as replay:
                subprocess.run(["zfs", "send", snap], stdout=replay, check=True)
        try:
            table = compare(env, snap, raw, args)
        finally:
            if args.replay:
                args.replay.unlink(missing_ok=True)
        found = ratios(table)
        print(f"source: {'the stream replayed from RAM' if args.replay else 'zfs send'}")
        print_table(raw, table, found, args.rounds)
        if args.profile:
            for name, r in table.items():
                for run in r["runs"][:1]:
                    if run.get("threads"):
                        top = ", ".join(f"{k} {v:.1f}s" for k, v in run["threads"].items())
                        print(f"profile {name}: {top}")
        rss = rss_check(env, args.rss_sizes, args) if args.rss_sizes else {}
    if args.json:
        figures = {"raw_bytes": raw, "paths": table, "targets": found, "rss_mb": rss}
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
