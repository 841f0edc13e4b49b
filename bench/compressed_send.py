"""`zfs send` against `zfs send -c` on real OpenZFS, each through our zstd and gzip compressors.

The NAS is the OpenZFS VM (scripts/openzfs-vm.sh), reached over SSH as in
pull mode. In it a pool gets three datasets, `compression=off` (the control),
`lz4` and `zstd`, each holding the same mixed data (half random, half
text-like logs, as bench/throughput.py makes it). For every dataset, four
paths run in alternating rounds (order rotated per round), medians reported:

    send    | ours zstd -3     send -c | ours zstd -3
    send    | ours gzip (isal) send -c | ours gzip (isal)

The two sides are measured apart, so neither's CPU use slows the other on a
shared host: each round first runs `send` and `send -c` (order alternating)
from the VM into a file here, then our compressors over those files (order
rotated). Per path: the stream's bytes, the stored bytes and the ratio (plain
send's bytes / stored, so a `-c` row shows what recompressing the already
compressed blocks gives up), and CPU seconds per GB of the dataset's plain
stream (1 GB = 1e9 bytes, the same divisor for `send` and `send -c`):

- NAS: the whole VM's busy CPU (user+nice+system+irq+softirq from its
  /proc/stat, read in the same remote command right before and after the
  send, so zio threads, decompression and sshd's encryption all count), and
  the `zfs send` process alone (user+system, kernel time in the ioctl included)
  as its parent shell's reaped-children time; and, on this host, the CPU
  the VM's emulator (qemu) spent meanwhile: unlike the guest's own clock,
  which under emulation also counts the time the host runs someone else,
  it grows only with the work the VM does, so it is the steadier figure;
- ssh: the client's side of the transport (the shared connection's process);
- ours: this process's CPU compressing the stream (zstd's worker threads
  included), as zfs-offsite does it (zstd -3 with 2 threads, gzip via isal -1).

Wall times: of the send into a file (the NAS's and the link's pace) and of
the compressor alone (ours; from the page cache).

Each dataset's stream is read once before its rounds, so the rounds read from
the ARC (which holds compressed blocks) and not from the virtual disks.
Caveat: without KVM the VM runs emulated (TCG); its CPU seconds are then
emulated ones, many times the native cost, and only the ratios between its
rows carry over to a real NAS. `--native` adds the host's own figures for
what `-c` saves on a NAS: decompressing lz4 and zstd records.

Run as root with the VM up (it creates and destroys a pool `zcs…` on the
VM's blank disks): `.venv/bin/python -m bench.compressed_send --size-mb 512 --rounds 3`;
`--json FILE` writes all figures.

The bench's text compresses so well that lz4 and zstd records alike end up
tiny, which hides what `-c` costs on ordinary text. `--ratio-model FILE...`
(no VM) answers that for any file, e.g. a tar of real data: it rebuilds the
`-c` stream of an lz4 and of a zstd dataset (128 KiB records; zstd ones kept
compressed where ZFS would keep them so, lz4 ones as the `lz4` tool does) and
compares our compressors' output over it with theirs over the plain bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import secrets
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.cpu import proc_cpu
from zfs_offsite.archive.names import Compression
from zfs_offsite.stream.compression import compressor

MB = 1024 * 1024
GB = 1e9
CHUNK = 1 << 20
RECORD = 128 * 1024  # recordsize's default
VM_CACHE = Path(os.environ.get("OPENZFS_VM_CACHE", "/var/tmp/openzfs-vm"))
VM_PORT = int(os.environ.get("OPENZFS_VM_PORT", "2222"))
QEMU_PID = VM_CACHE / f"run-{VM_PORT}" / "qemu.pid"
DATASETS = ("off", "lz4", "zstd")
PATHS = (("send", "zstd"), ("send -c", "zstd"), ("send", "gzip"), ("send -c", "gzip"))
LEVELS = {"zstd": 3, "gzip": 1}  # zfs-offsite's defaults (compression.level unset)
ZSTD_THREADS = 2  # compression.threads' default

# Runs in the VM: the same mixed data as bench/throughput.py's make_data.
MAKE_DATA = """
import sys
MB = 1024 * 1024
directory, size_mb = sys.argv[1], int(sys.argv[2])
with open(f"{directory}/random.bin", "wb") as out, open("/dev/urandom", "rb") as rnd:
    for _ in range(size_mb // 2):
        out.write(rnd.read(MB))
line = b"2019-08-06 02:00 sample=%08d value=%08d lab member measurement notes\\n"
with open(f"{directory}/log.txt", "wb") as out:
    n = 0
    while out.tell() < (size_mb - size_mb // 2) * MB:
        out.write(b"".join(line % (n + i, (n + i) * 7919 % 99991) for i in range(4096)))
        n += 4096
"""

# Runs in the VM around one send: /proc/stat's cpu line before and after on stderr,
# then the shell's own stat, whose cutime/cstime hold the reaped `zfs send`.
MEASURE = (
    'head -n1 /proc/stat >&2; zfs send "$@"; rc=$?; head -n1 /proc/stat >&2; '
    'echo "self $(cat /proc/$$/stat)" >&2; exit $rc'
)


def ssh_argv(*, master: Path) -> list[str]:
    """ssh to the VM over one shared connection, so no run pays (or counts) a handshake."""
    return [
        "ssh",
        *("-i", str(VM_CACHE / "id_ed25519"), "-p", str(VM_PORT)),
        *("-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={VM_CACHE / 'known_hosts'}"),
        *("-o", "HostKeyAlias=openzfs-vm", "-o", "StrictHostKeyChecking=yes"),
        *("-o", "BatchMode=yes", "-o", "ControlMaster=auto", "-o", f"ControlPath={master}"),
        *("-o", "ControlPersist=600", "-o", "LogLevel=ERROR"),
        "root@127.0.0.1",
    ]


class Vm:
    def __init__(self, master: Path) -> None:
        self.ssh = ssh_argv(master=master)

    def run(self, *argv: str, check: bool = True) -> str:
        done = subprocess.run(
            [*self.ssh, shlex.join(argv)], capture_output=True, text=True, check=False
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"in the VM: {shlex.join(argv)}: {done.stderr.strip()}")
        return done.stdout

    def master_pid(self) -> int | None:
        """The shared connection's ssh process: the client side's transport CPU is spent there."""
        done = subprocess.run([*self.ssh[:-1], "-O", "check", self.ssh[-1]], capture_output=True)
        found = re.search(rb"pid=(\d+)", done.stderr)
        return int(found.group(1)) if found else None

    def close(self) -> None:
        subprocess.run([*self.ssh[:-1], "-O", "exit", self.ssh[-1]], capture_output=True)


def busy_ticks(line: str) -> int:
    """user+nice+system+irq+softirq of a /proc/stat `cpu` line (idle, iowait, steal left out)."""
    fields = [int(f) for f in line.split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return user + nice + system + irq + softirq


def children_ticks(stat: str) -> int:
    """cutime+cstime of a /proc/PID/stat line."""
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[13]) + int(fields[14])


def cpu_now() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def qemu_pid() -> int | None:
    try:
        return int(QEMU_PID.read_text())
    except (OSError, ValueError):
        return None


def nas_run(vm: Vm, snap: str, flags: list[str], out: Path, tick: int) -> dict:
    """One send from the VM into a file here: the NAS's side alone."""
    remote = shlex.join(["sh", "-c", MEASURE, "sh", *flags, snap])
    master, qemu = vm.master_pid(), qemu_pid()
    ssh_before = proc_cpu(master) if master else 0.0
    qemu_before = proc_cpu(qemu) if qemu else 0.0
    start = time.monotonic()
    with out.open("wb") as sink:
        done = subprocess.run([*vm.ssh, remote], stdout=sink, stderr=subprocess.PIPE, check=False)
    seconds = time.monotonic() - start
    err = done.stderr.decode()
    if done.returncode != 0:
        raise RuntimeError(f"zfs send {' '.join(flags)} {snap} failed: {err.strip()}")
    lines = [line for line in err.splitlines() if line.startswith(("cpu ", "self "))]
    before, after, me = lines[0], lines[1], lines[2].split(" ", 1)[1]
    return {
        "stream": out.stat().st_size,
        "seconds": seconds,
        "nas_cpu": (busy_ticks(after) - busy_ticks(before)) / tick,
        "send_cpu": children_ticks(me) / tick,
        "ssh_cpu": (proc_cpu(master) - ssh_before) if master else 0.0,
        "qemu_cpu": (proc_cpu(qemu) - qemu_before) if qemu else 0.0,
    }


def compress_run(stream: Path, algo: str) -> dict:
    """Our compressor over a stored stream (from the page cache): our side alone."""
    squeeze = compressor(Compression(algo), LEVELS[algo], ZSTD_THREADS)
    stored = 0
    self_before, _ = cpu_now()
    start = time.monotonic()
    with stream.open("rb", buffering=0) as source:
        while chunk := source.read(CHUNK):
            stored += len(squeeze.compress(chunk))
    stored += len(squeeze.finish())
    return {
        "stored": stored,
        "seconds": time.monotonic() - start,
        "ours_cpu": cpu_now()[0] - self_before,
    }


def med(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def prepare(vm: Vm, pool: str, disks: list[str], size_mb: int) -> None:
    """The pool, its three datasets and their snapshots `@bench`, all with the same files."""
    vm.run("zpool", "create", "-f", "-O", "atime=off", pool, *disks)
    for comp in DATASETS:
        vm.run("zfs", "create", "-o", f"compression={comp}", f"{pool}/{comp}")
    first = f"/{pool}/{DATASETS[0]}"
    vm.run("python3", "-c", MAKE_DATA, first, str(size_mb))
    for comp in DATASETS[1:]:
        for name in ("random.bin", "log.txt"):
            # dd, not cp: OpenZFS 2.2+ `cp` clones blocks, which would keep them uncompressed.
            copy = ["dd", f"if={first}/{name}", f"of=/{pool}/{comp}/{name}", "bs=1M"]
            vm.run(*copy, "status=none")
    for comp in DATASETS:
        vm.run("zfs", "snapshot", f"{pool}/{comp}@bench")


def bench_dataset(vm: Vm, snap: str, rounds: int, tick: int, work: Path) -> dict:
    """Alternating rounds of `send` and `send -c`, then of our compressors over each stream."""
    vm.run("sh", "-c", f"zfs send {shlex.quote(snap)} > /dev/null")  # into the ARC
    flags = {"send": [], "send -c": ["-c"]}
    sends: dict[str, list[dict]] = {name: [] for name in flags}
    squeezed: dict[str, list[dict]] = {f"{flag} | {algo}": [] for flag, algo in PATHS}
    order = list(PATHS)
    for round_no in range(rounds):
        for name in list(flags)[round_no % 2 :] + list(flags)[: round_no % 2]:
            result = nas_run(vm, snap, flags[name], work / name.replace(" ", ""), tick)
            sends[name].append(result)
            print(
                f"  {snap} round {round_no + 1} {name:7}: {result['seconds']:6.1f}s"
                f" {result['stream'] / MB:7.1f} MiB nas {result['nas_cpu']:6.1f}s"
                f" (zfs send {result['send_cpu']:5.1f}s) qemu {result['qemu_cpu']:6.1f}s"
                f" ssh {result['ssh_cpu']:4.1f}s",
                file=sys.stderr,
            )
        shift = round_no % len(order)
        for flag, algo in order[shift:] + order[:shift]:
            squeezed[f"{flag} | {algo}"].append(compress_run(work / flag.replace(" ", ""), algo))
    plain = int(med(sends["send"], "stream"))
    gb = plain / GB
    table = {}
    for flag, algo in PATHS:
        nas, ours = sends[flag], squeezed[f"{flag} | {algo}"]
        table[f"{flag} | {algo}"] = {
            "stream_bytes": int(med(nas, "stream")),
            "stored_bytes": int(med(ours, "stored")),
            "ratio": plain / med(ours, "stored"),
            "send_seconds": med(nas, "seconds"),
            "compress_seconds": med(ours, "seconds"),
            "nas_cpu_s_per_gb": med(nas, "nas_cpu") / gb,
            "send_cpu_s_per_gb": med(nas, "send_cpu") / gb,
            "ssh_cpu_s_per_gb": med(nas, "ssh_cpu") / gb,
            "qemu_cpu_s_per_gb": med(nas, "qemu_cpu") / gb,
            "ours_cpu_s_per_gb": med(ours, "ours_cpu") / gb,
            "runs": {"nas": nas, "ours": ours},
        }
    return table


def native_decompression(size_mb: int) -> dict:
    """Host CPU-s per GB of data to decompress 128 KiB records: what a NAS spends per plain send.

    The same mixed data; lz4 as `lz4 -b`, zstd -3 as `zstd -b`, block size = recordsize.
    """
    found = {}
    data = Path("/tmp") / f"zcs-native-{secrets.token_hex(3)}"
    data.mkdir()
    try:
        text = MAKE_DATA.replace("sys.argv[1], int(sys.argv[2])", f"{str(data)!r}, {size_mb}")
        subprocess.run([sys.executable, "-c", text], check=True)
        files = [str(data / "random.bin"), str(data / "log.txt")]
        for tool, level in (("lz4", "-1"), ("zstd", "-3")):
            out = subprocess.run(
                [tool, "-b" + level.lstrip("-"), "-B128KB", "-i3", *files],
                capture_output=True,
                text=True,
                check=False,
            )
            # The last result line: "... (x1.860), 1225.9 MB/s, 3603.6 MB/s" (compress, decompress).
            text = (out.stdout + out.stderr).replace("\r", "\n")
            lines = [re.findall(r"([\d.]+) MB/s", line) for line in text.splitlines()]
            speeds = [found for found in lines if len(found) >= 2][-1:]
            if speeds:
                speeds = speeds[0]
                found[tool] = {
                    "compress_mb_s": float(speeds[-2]),
                    "decompress_mb_s": float(speeds[-1]),
                    "decompress_cpu_s_per_gb": 1000 / float(speeds[-1]),
                }
    finally:
        subprocess.run(["rm", "-rf", str(data)], check=True)
    return found


def squeezed_size(data: bytes, algo: str) -> int:
    """Bytes out of our compressor (zfs-offsite's defaults) for `data`."""
    squeeze = compressor(Compression(algo), LEVELS[algo], ZSTD_THREADS)
    size = sum(len(squeeze.compress(data[i : i + CHUNK])) for i in range(0, len(data), CHUNK))
    return size + len(squeeze.finish())


def zstd_records(data: bytes) -> bytes:
    """`data` as a zstd dataset's `send -c` carries it: 128 KiB records at zstd-3, each kept
    compressed only if that saves at least 1/8 (ZFS's rule), else as it is."""
    import zstandard

    squeeze = zstandard.ZstdCompressor(level=3)
    out = []
    for i in range(0, len(data), RECORD):
        block = data[i : i + RECORD]
        packed = squeeze.compress(block)
        out.append(packed if len(packed) <= len(block) - len(block) // 8 else block)
    return b"".join(out)


def lz4_records(path: Path) -> bytes:
    """`path` as an lz4 dataset's `send -c` carries it, near enough: lz4 -1 in independent
    128 KiB blocks (an incompressible block is kept as it is)."""
    argv = ["lz4", "-1", f"-B{RECORD}", "-BI", "-c", str(path)]
    return subprocess.run(argv, capture_output=True, check=True).stdout


def ratio_model(paths: list[Path]) -> dict:
    """Host only, no VM: what storing a dataset's compressed records (`send -c`) costs in
    stored bytes against compressing its plain stream, for any file (e.g. a tar of real data).
    """
    found = {}
    for path in paths:
        data = path.read_bytes()
        row: dict[str, float] = {"bytes": len(data)}
        for algo in LEVELS:
            plain = squeezed_size(data, algo)
            row[f"{algo}_plain_ratio"] = len(data) / plain
            for dataset, records in (("lz4", lz4_records(path)), ("zstd", zstd_records(data))):
                row[f"{dataset}_stream_share"] = len(records) / len(data)
                row[f"{algo}_over_{dataset}_cost"] = squeezed_size(records, algo) / plain - 1
        found[str(path)] = row
        print(
            f"{path.name}: {len(data) / MB:.0f} MiB; plain send | zstd ratio"
            f" {row['zstd_plain_ratio']:.3f}, | gzip {row['gzip_plain_ratio']:.3f};"
            f" send -c stream {row['lz4_stream_share']:.0%} (lz4), {row['zstd_stream_share']:.0%}"
            f" (zstd) of the plain one; stored bytes vs plain: lz4 dataset"
            f" {row['zstd_over_lz4_cost']:+.1%} (zstd) {row['gzip_over_lz4_cost']:+.1%} (gzip),"
            f" zstd dataset {row['zstd_over_zstd_cost']:+.1%} (zstd)"
            f" {row['gzip_over_zstd_cost']:+.1%} (gzip)"
        )
    return found


def print_table(table: dict, rounds: int) -> None:
    print(f"{rounds} alternating rounds, medians; CPU-s per GB of the dataset's plain send stream")
    print(
        f"{'dataset':8} {'path':16} {'stream MiB':>10} {'stored MiB':>10} {'ratio':>6}"
        f" {'vs send':>8} {'NAS':>7} {'zfs':>6} {'qemu':>6} {'ssh':>5} {'ours':>5}"
        f" {'send s':>7} {'comp s':>6}"
    )
    for comp, paths in table.items():
        for name, r in paths.items():
            algo = name.split("|")[1].strip()
            against = paths[f"send | {algo}"]["stored_bytes"]
            print(
                f"{comp:8} {name:16} {r['stream_bytes'] / MB:10.1f} {r['stored_bytes'] / MB:10.1f}"
                f" {r['ratio']:6.3f} {r['stored_bytes'] / against - 1:+8.1%}"
                f" {r['nas_cpu_s_per_gb']:7.1f} {r['send_cpu_s_per_gb']:6.1f}"
                f" {r['qemu_cpu_s_per_gb']:6.1f}"
                f" {r['ssh_cpu_s_per_gb']:5.2f} {r['ours_cpu_s_per_gb']:5.2f}"
                f" {r['send_seconds']:7.1f} {r['compress_seconds']:6.2f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=512, help="data per dataset")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--disks", nargs="+", default=["/dev/vdb", "/dev/vdc"])
    parser.add_argument("--native", action="store_true", help="host decompression figures too")
    parser.add_argument("--json", type=Path, help="write all figures here")
    parser.add_argument(
        "--ratio-model",
        type=Path,
        nargs="+",
        metavar="FILE",
        help="no VM: model the stored-bytes cost of `send -c` on these files (e.g. a tar of "
        "real data) and exit",
    )
    args = parser.parse_args()
    if args.ratio_model:
        model = ratio_model(args.ratio_model)
        if args.json:
            args.json.write_text(json.dumps(model, indent=2) + "\n")
        return
    if os.geteuid() != 0:
        sys.exit("bench.compressed_send: run as root (the VM's key is root's)")
    pool = f"zcs{secrets.token_hex(3)}"
    master = Path("/tmp") / f"zcs-ssh-{secrets.token_hex(3)}"
    vm = Vm(master)
    work = Path(tempfile.mkdtemp(prefix="zcs-streams-"))
    try:
        version = vm.run("zfs", "version").split()[0]
    except RuntimeError as exc:
        sys.exit(f"bench.compressed_send: OpenZFS VM not reachable ({exc}): scripts/openzfs-vm.sh")
    tick = int(vm.run("getconf", "CLK_TCK"))
    try:
        prepare(vm, pool, args.disks, args.size_mb)
        table = {
            comp: bench_dataset(vm, f"{pool}/{comp}@bench", args.rounds, tick, work)
            for comp in DATASETS
        }
    finally:
        shutil.rmtree(work)
        vm.run("zpool", "destroy", "-f", pool, check=False)
        vm.close()
    print(f"NAS: {version} in the VM; {args.size_mb} MiB of mixed data per dataset")
    print_table(table, args.rounds)
    native = native_decompression(args.size_mb) if args.native else {}
    for tool, speed in native.items():
        print(
            f"host, {tool} over 128 KiB records of the same data: decompression"
            f" {speed['decompress_mb_s']:.0f} MB/s"
            f" = {speed['decompress_cpu_s_per_gb']:.2f} CPU-s/GB"
            " (what a plain send of such a dataset spends, natively, that `send -c` does not)"
        )
    if args.json:
        figures = {"zfs": version, "size_mb": args.size_mb, "datasets": table, "native": native}
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
