"""Real data on real datasets, and restores with nothing but standard tools."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from tests.support.services import run


def write_member_data(directory: Path, seed: int, megabytes: int = 2) -> None:
    """A random file (incompressible) and a text file (compressible), different per seed."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"random-{seed}.bin").write_bytes(rng.randbytes(megabytes * 1024 * 1024))
    words = ["zfs", "snapshot", "backup", "lab", "member", "data", str(seed)]
    text = " ".join(rng.choice(words) for _ in range(megabytes * 150_000))
    (directory / f"notes-{seed}.txt").write_text(text)


def create_member(pool: str, member: str, prefix: str = "elabfs-") -> str:
    dataset = f"{pool}/{prefix}{member}"
    run(["zfs", "create", dataset])
    return dataset


def snapshot(dataset: str, name: str) -> None:
    run(["zfs", "snapshot", f"{dataset}@{name}"])


def random_member(pool: str, mountpoint: Path, member: str, mebibytes: int) -> str:
    """Member `member` holding `mebibytes` (a multiple of 16) of random data, snapshotted SNAP:
    incompressible, so a stored object is about as big as its stream (resume tests, benches)."""
    dataset = create_member(pool, member)
    with (mountpoint / f"elabfs-{member}" / "random.bin").open("wb") as out:
        for _ in range(mebibytes // 16):
            out.write(os.urandom(16 << 20))
    snapshot(dataset, SNAP)
    return dataset


def populate_members(
    pool: str, mountpoint: Path, members: Iterable[str], megabytes: int = 2
) -> None:
    """Each member created with its own data (seeded by its position) and the snapshot SNAP."""
    for seed, member in enumerate(members):
        dataset = create_member(pool, member)
        write_member_data(mountpoint / f"elabfs-{member}", seed, megabytes=megabytes)
        snapshot(dataset, SNAP)


def zfs_get(prop: str, name: str) -> str:
    """One property's value as `zfs get -H -o value` prints it (user properties too)."""
    return str(run(["zfs", "get", "-H", "-o", "value", prop, name]).stdout.strip())


def guid(name: str) -> int:
    return int(run(["zfs", "get", "-H", "-p", "-o", "value", "guid", name]).stdout.strip())


def tree_digest(directory: Path) -> dict[str, str]:
    """Relative path -> sha256 of every regular file below `directory`."""
    result = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = Path(root) / name
            result[str(path.relative_to(directory))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return result


def decompress_argv(path: Path) -> list[str]:
    if path.name.endswith(".gz"):
        return ["zcat", str(path)]
    return ["zstd", "-d", "-c", "-q", str(path)]


def receive_with_standard_tools(files: list[Path], dataset: str) -> None:
    """`zcat f | zfs receive ds` or `zstd -d -c f | zfs receive ds`, file by file."""
    for path in files:
        decompress = subprocess.Popen(decompress_argv(path), stdout=subprocess.PIPE)
        receive = subprocess.run(
            ["zfs", "receive", dataset], stdin=decompress.stdout, capture_output=True, text=True
        )
        assert decompress.stdout is not None
        decompress.stdout.close()
        assert decompress.wait() == 0, f"decompressing {path} failed"
        assert receive.returncode == 0, f"zfs receive of {path.name}: {receive.stderr}"


def gzip_send(argv: list[str], out: Path) -> None:
    """The seed's way: `zfs send ... | gzip > out`."""
    with out.open("wb") as handle:
        send = subprocess.Popen(argv, stdout=subprocess.PIPE)
        gz = subprocess.run(["gzip"], stdin=send.stdout, stdout=handle, check=True)
        assert send.stdout is not None
        send.stdout.close()
        assert send.wait() == 0 and gz.returncode == 0


MEMBERS = ("alice", "bob", "carol")  # the members of the standard test pool
SNAP = "auto-20190806.0200-1w"  # the first snapshot of every member in the standard test pool


def destroy_dataset(name: str) -> None:
    """`zfs destroy -r`, as an admin would; zfs-fuse may call a dataset busy for a moment after
    a send (its unmount), so retry that, and only that, for a few seconds."""
    for _ in range(20):
        done = subprocess.run(["zfs", "destroy", "-r", name], capture_output=True, text=True)
        if done.returncode == 0:
            return
        if "dataset is busy" not in done.stderr:
            break
        time.sleep(0.5)
    raise RuntimeError(f"zfs destroy -r {name} failed: {done.stderr.strip()}")
