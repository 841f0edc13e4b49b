"""A real S3 endpoint for the tests: a single-node Ceph RADOS Gateway on 127.0.0.1.

One monitor, one OSD (BlueStore in a sparse file, MemStore on tmpfs) and one
radosgw, started as plain processes with all their state in one temp directory,
then an S3 user and a bucket. `stop` kills exactly the processes it started (by
the PIDs it recorded, and only while their command line still names this
instance's ceph.conf, so a recycled PID is never hit) and deletes the directory.

Why it is written this way (each cost time once; measured on Ceph 16.2, Debian 12):
- cephx is off (everything listens on 127.0.0.1; S3 itself is still signed), but
  radosgw then still asks for "secure" monitor connections and loops on
  `get_initial_auth_request returned -13`: the `ms_*_mode = crc` options.
- The monitor batches map changes for `paxos_propose_interval` (1 s by default);
  OSD boot and radosgw's first start make a dozen: 0.05 s starts in ~4 s, not 20.
- `bluestore_block_path` stays unset (the OSD's own `block` file would loop).
- The daemons get no descriptor of ours (close_fds) and their own session, with
  stdio on log files: a pipe of the caller (pytest's capture, `$(...)`) never waits
  on them, and a signal to the test run's process group does not reach them.
- SIGKILL at stop: the state is thrown away, and radosgw takes ~5 s on SIGTERM.
- No ceph-mgr, so `ceph -s` shows no pools: readiness is `osd dump` and a
  warm-up PUT/DELETE (the first write creates the data pool).
- BlueStore needs direct I/O, which tmpfs lacks: MemStore there.
- Bucket quota stats are cached for 10 minutes by default (`rgw_bucket_quota_ttl`):
  0 here, so a quota set with radosgw-admin bites at the next request.

`python -m tests.support.rgw start|env|stop [--dir DIR]` for humans: `start`
prints the S3 settings as shell variables.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.support.tiers import missing

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

DAEMONS = ("rgw", "osd", "mon")  # the order they are stopped in: clients first
PORTS = 10  # mon, rgw, and the OSD's msgr v2 ports (it binds 4) in one block
REGION = "us-east-1"
USER = "zfs-offsite-test"
STATE = "rgw.json"
# The daemons this process started, by PID: ours for sure while unreaped (no PID reuse),
# even in the instant after exec when /proc/PID/cmdline is still empty.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class RgwError(RuntimeError):
    """The store did not come up; the message names the step and ends with its log."""


@dataclass(frozen=True)
class Rgw:
    """A running store: where it answers, the S3 user's keys, its bucket, its files."""

    endpoint: str
    access_key: str
    secret_key: str
    bucket: str
    region: str
    directory: str

    @property
    def conf(self) -> Path:
        return Path(self.directory) / "ceph.conf"

    def environment(self) -> dict[str, str]:
        """The standard AWS variables (and the endpoint) a client or rclone reads."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint,
            "S3_BUCKET": self.bucket,
        }

    def client(self, **config: Any) -> S3Client:
        """A boto3 S3 client for this store: path-style, checksums only when required.

        botocore >= 1.36 sends CRC32 checksums with aws-chunked trailers on every
        upload; RGW 16 predates them, so they are asked for only where S3 needs one.
        """
        import boto3
        from botocore.config import Config

        settings: dict[str, Any] = {
            "s3": {"addressing_style": "path"},
            "retries": {"max_attempts": 2},
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
        }
        settings.update(config)
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(**settings),
        )

    def admin(self, *args: str) -> str:
        """Run `radosgw-admin` on this cluster (quotas, users, bucket stats); its stdout."""
        return run(Path(self.directory), "radosgw-admin", "-c", str(self.conf), *args)

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)


def start(
    parent: Path | None = None,
    *,
    bucket: str = "zfs-offsite-test",
    port_base: int | None = None,
    size_gib: int = 10,
    timeout: float = 120.0,
    tries: int = 2,
    tied: bool = True,
) -> Rgw:
    """Start a store in a new directory under `parent` (the temp dir); a second
    attempt gets fresh ports. Raises RgwError with the failing step's log.

    `tied`: the daemons get SIGKILL when this process dies, even by SIGKILL, so a
    killed test run leaves no store running (its directory stays in the temp dir).
    """
    reason = missing("ceph")
    if reason:
        raise RgwError(reason)
    error: RgwError | None = None
    for _ in range(tries):
        directory = Path(tempfile.mkdtemp(prefix="zfs-offsite-rgw-", dir=parent))
        try:
            return _start_once(directory, bucket, port_base, size_gib, timeout, tied)
        except RgwError as failed:
            error = failed
            stop(directory)
        except BaseException:
            stop(directory)
            raise
    assert error is not None
    raise error


def stop(directory: Path) -> None:
    """Kill the processes this instance started and delete its directory (idempotent)."""
    conf = str(directory / "ceph.conf")
    pids = [_pid(directory, name) for name in DAEMONS]
    # A lost PID file or a hung radosgw-admin/ceph call: anything else running on our conf.
    pids += [pid for pid in _pids_naming(conf) if pid not in pids]
    ours = [pid for pid in pids if _alive(pid, conf)]
    for pid in ours:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(_alive(pid, conf) for pid in ours) and time.monotonic() < deadline:
        time.sleep(0.05)
    shutil.rmtree(directory, ignore_errors=True)


def load(directory: Path) -> Rgw:
    """The running store whose state is in `directory` (written by start)."""
    return Rgw(**json.loads((directory / STATE).read_text()))


# ---------------------------------------------------------------------------- starting


def _start_once(
    directory: Path, bucket: str, port_base: int | None, size_gib: int, timeout: float, tied: bool
) -> Rgw:
    # setpriv execs the daemon in place (same PID); the parent-death signal survives exec.
    tie = ("setpriv", "--pdeathsig", "KILL") if tied else ()
    for sub in ("mon/a", "osd/0", "rgw", "log", "pid", "run"):
        (directory / sub).mkdir(parents=True)
    base = port_base if port_base is not None else free_port_block(PORTS)
    mon_port, rgw_port = base, base + 1
    endpoint = f"http://127.0.0.1:{rgw_port}"
    fsid = str(uuid.uuid4())
    conf = directory / "ceph.conf"
    store = "memstore" if _on_tmpfs(directory) else "bluestore"
    conf.write_text(_config(directory, fsid, base, store, size_gib << 30))
    c = str(conf)

    monmap = str(directory / "monmap")
    run(directory, "monmaptool", "--create", "--fsid", fsid, "--addv", "a",
        f"[v2:127.0.0.1:{mon_port}]", monmap)  # fmt: skip
    run(directory, "ceph-mon", "-c", c, "--mkfs", "-i", "a", "--monmap", monmap)
    _spawn(directory, "mon", *tie, "ceph-mon", "-c", c, "-f", "-i", "a")
    _wait(
        directory, "mon", "the monitor's quorum", timeout, lambda: _ceph(directory, "mon", "stat")
    )

    osd_uuid = str(uuid.uuid4())
    osd_id = run(directory, "ceph", "-c", c, "--connect-timeout", "10", "osd", "new", osd_uuid)
    if osd_id.strip() != "0":
        raise RgwError(f"`ceph osd new` gave id {osd_id.strip()!r}, not 0")
    run(directory, "ceph-osd", "-c", c, "-i", "0", "--mkfs", "--osd-uuid", osd_uuid)
    _spawn(directory, "osd", *tie, "ceph-osd", "-c", c, "-f", "-i", "0")
    _wait(directory, "osd", "osd.0 up", timeout, lambda: _osd_up(directory))

    _spawn(directory, "rgw", *tie, "radosgw", "-c", c, "-f", "-n", "client.rgw.a")
    _wait(directory, "rgw", f"radosgw answering on {endpoint}", timeout, lambda: _http_ok(endpoint))

    access_key, secret_key = secrets.token_hex(10).upper(), secrets.token_hex(20)
    run(directory, "radosgw-admin", "-c", c, "user", "create", f"--uid={USER}",
        "--display-name=zfs-offsite tests", f"--access-key={access_key}",
        f"--secret-key={secret_key}")  # fmt: skip
    rgw = Rgw(endpoint, access_key, secret_key, bucket, REGION, str(directory))
    s3 = rgw.client()
    s3.create_bucket(Bucket=bucket)
    # The first object write makes radosgw create its data pool: now, not in a test.
    s3.put_object(Bucket=bucket, Key=".warm-up", Body=b"warm-up")
    s3.delete_object(Bucket=bucket, Key=".warm-up")
    (directory / STATE).write_text(json.dumps(asdict(rgw)))
    return rgw


def _config(directory: Path, fsid: str, base: int, store: str, size: int) -> str:
    d = directory
    return f"""# a throwaway single-node cluster for the zfs-offsite tests (tests/support/rgw.py)
[global]
fsid = {fsid}
mon_host = v2:127.0.0.1:{base}
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_msgr1 = false
ms_bind_port_min = {base + 2}
ms_bind_port_max = {base + PORTS - 1}
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
ms_mon_client_mode = crc
ms_mon_cluster_mode = crc
ms_mon_service_mode = crc
ms_client_mode = crc
ms_cluster_mode = crc
ms_service_mode = crc
keyring = {d}/keyring
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_max_pg_per_osd = 1000
mon_warn_on_pool_no_redundancy = false
mon_data_avail_warn = 2
mon_data_avail_crit = 1
run_dir = {d}/run
admin_socket = {d}/run/$name.asok
log_file = {d}/log/$name.log
log_to_stderr = false
err_to_stderr = true

[mon]
mon_data = {d}/mon/$id
mon_initial_members = a
paxos_propose_interval = 0.05

[osd]
osd_data = {d}/osd/$id
osd_objectstore = {store}
bluestore_block_create = true
bluestore_block_size = {size}
bluestore_fsck_on_mkfs = false
bdev_aio_poll_ms = 50
memstore_device_bytes = {size}
osd_memory_target = 1073741824

[client.rgw.a]
rgw_data = {d}/rgw
rgw_frontends = beast endpoint=127.0.0.1:{base + 1}
rgw_thread_pool_size = 32
rgw_bucket_quota_ttl = 0
rgw_gc_obj_min_wait = 120
rgw_gc_processor_period = 120
"""


def free_port_block(size: int, low: int = 20000, high: int = 32000) -> int:
    """The first port of `size` consecutive ports no socket on this machine uses."""
    used = _used_ports()
    rng = secrets.SystemRandom()
    for _ in range(500):
        base = rng.randrange(low, high - size)
        if not used.intersection(range(base, base + size)):
            return base
    raise RgwError(f"no {size} free consecutive TCP ports in {low}-{high}")


def _used_ports() -> set[int]:
    used: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                used.add(int(line.split()[1].rsplit(":", 1)[1], 16))
    return used


def _on_tmpfs(directory: Path) -> bool:
    """True when `directory` is on tmpfs (no direct I/O: BlueStore cannot run there)."""
    best, fstype = "", ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            mount = fields[1]
            inside = str(directory).startswith(mount.rstrip("/") + "/") or mount == "/"
            if inside and len(mount) > len(best):
                best, fstype = mount, fields[2]
    return fstype == "tmpfs"


def run(directory: Path, *argv: str, timeout: float = 60) -> str:
    """Run a Ceph command to completion; RgwError with its output when it fails."""
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as late:
        raise RgwError(f"`{' '.join(argv[:4])}` took over {timeout:.0f} s") from late
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-10:]
        raise RgwError(f"`{' '.join(argv[:4])}` failed ({done.returncode}): " + " | ".join(tail))
    return done.stdout


def _spawn(directory: Path, name: str, *argv: str) -> None:
    log = (directory / "log" / f"{name}.out").open("ab")
    with log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            close_fds=True,
            start_new_session=True,
        )
    _CHILDREN[proc.pid] = proc
    (directory / "pid" / name).write_text(str(proc.pid))


def _wait(directory: Path, name: str, what: str, timeout: float, ready: Any) -> None:
    deadline = time.monotonic() + timeout
    conf = str(directory / "ceph.conf")
    while not ready():
        if not _alive(_pid(directory, name), conf):
            raise RgwError(f"{name} died waiting for {what}: {_log_tail(directory, name)}")
        if time.monotonic() > deadline:
            raise RgwError(f"timeout ({timeout:.0f} s) waiting for {what}")
        time.sleep(0.2)


def _ceph(directory: Path, *args: str) -> str | None:
    try:
        return run(directory, "ceph", "-c", str(directory / "ceph.conf"),
                   "--connect-timeout", "10", *args, timeout=30)  # fmt: skip
    except RgwError:
        return None


def _osd_up(directory: Path) -> bool:
    dump = _ceph(directory, "osd", "dump") or ""
    return any(line.startswith("osd.0 up") for line in dump.splitlines())


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/", timeout=5) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _pid(directory: Path, name: str) -> int:
    try:
        return int((directory / "pid" / name).read_text())
    except (OSError, ValueError):
        return 0


def _alive(pid: int, conf: str) -> bool:
    """True while `pid` is a daemon of this instance: our unreaped child, or (started by
    another process, e.g. `python -m tests.support.rgw start`) one that names our conf."""
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _CHILDREN[pid]
        return False
    return _names(pid, conf)


def _names(pid: int, conf: str) -> bool:
    """True while `pid` is a live process whose command line names our ceph.conf."""
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and conf.encode() in cmdline.split(b"\0")


def _pids_naming(conf: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _names(int(entry.name), conf):
            found.append(int(entry.name))
    return found


def _log_tail(directory: Path, name: str) -> str:
    lines: list[str] = []
    for log in sorted((directory / "log").glob(f"*{name}*")):
        with contextlib.suppress(OSError):
            lines += log.read_text(errors="replace").strip().splitlines()[-5:]
    return " | ".join(lines[-8:]) or "(no log)"


# ---------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.rgw", description=__doc__)
    parser.add_argument("command", choices=("start", "env", "stop"))
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "zfs-offsite-rgw",
        help="where the instance's directory is kept (default: %(default)s)",
    )
    parser.add_argument("--port-base", type=int, help="use ports N..N+9 (default: a free block)")
    args = parser.parse_args(argv)
    home: Path = args.dir
    current = home / "current"
    if args.command == "stop":
        if current.is_symlink() or current.exists():
            stop(current.resolve())
            current.unlink(missing_ok=True)
        return 0
    stale = (current / STATE).exists() and not _http_ok(load(current).endpoint)
    if args.command == "start" and stale:  # left over from a crash: start afresh
        stop(current.resolve())
        current.unlink(missing_ok=True)
    if args.command == "start" and not (current / STATE).exists():
        home.mkdir(parents=True, exist_ok=True)
        try:
            rgw = start(home, port_base=args.port_base, tied=False)
        except RgwError as error:
            print(f"rgw: {error}", file=sys.stderr)
            return 1
        current.unlink(missing_ok=True)
        current.symlink_to(rgw.directory)
    if not (current / STATE).exists():
        print(f"rgw: none running under {home}: start one first", file=sys.stderr)
        return 1
    rgw = load(current)
    for name, value in rgw.environment().items():
        print(f"export {name}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
