"""Restore throughput: ours (SFTP read → sha256 → zstd -d → zfs receive) against the shell.

The shell baseline is `ssh host cat f | zstd -d | zfs receive`, run in the same
session against the same file, alternating with ours `--rounds` times (who
goes first alternates too); each restore goes into a fresh dataset that is
destroyed afterwards. Ours also checks sha256, which the baseline does not.

Run as root: `.venv/bin/python -m bench.restore --size-mb 512`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from bench.loopback import loopback
from bench.throughput import MB, make_data, run_shell
from tests.support.zfsdata import create_member, destroy_dataset, snapshot


def run_ours(settings_json: str, destination: str) -> dict:
    """Restore in a child process so its peak RSS is its own.

    Timed inside the child from before the SSH connection to the received
    snapshot, so Python's start-up (imports, about a second) is left out; the
    shell's time includes its `ssh` handshake.
    """
    code = f"""
import json, resource, time
from contextlib import closing
from zfs_offsite.settings import load_settings
from zfs_offsite.connect import open_runner, open_store
from zfs_offsite.jobs.restore import restore_member
s = load_settings(**json.loads({settings_json!r}))
start = time.monotonic()
with closing(open_runner(s)) as runner, closing(open_store(s.target)) as store:
    r = restore_member(s, runner, store, "bench", {destination!r})
print(json.dumps({{"raw": r.raw_bytes, "seconds": time.monotonic() - start,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return {"seconds": data["seconds"], "raw": data["raw"], "rss_mb": data["rss_mb"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with loopback("restore", args.size_mb * 3 + 512) as env:
        pool, archive = env.pool, env.archive
        dataset = create_member(pool.name, "bench")
        make_data(pool.mountpoint / "elabfs-bench", args.size_mb)
        snapshot(dataset, "bench")
        settings = {
            "source": {"pool": pool.name},
            "target": {
                "url": env.sftp_url,
                "key_file": str(env.sshd.client_key),
                "known_hosts": str(env.sshd.known_hosts),
            },
        }
        backup = (
            "import json,sys; from zfs_offsite.settings import load_settings;"
            "from zfs_offsite.jobs.backup import backup_member, discover_members;"
            "s = load_settings(**json.loads(sys.argv[1]));"
            "[backup_member(s, m) for m in discover_members(s)]"
        )
        subprocess.run([sys.executable, "-c", backup, json.dumps(settings)], check=True)
        (stored,) = (archive / "bench").glob("*.zst")
        ssh = env.ssh_command()
        raw = json.loads((archive / "bench" / f"{stored.name}.json").read_text())["raw_bytes"]
        ours: list[dict] = []
        shell: list[dict] = []

        def run_ours_once(i: int) -> None:
            ours.append(run_ours(json.dumps(settings), f"{pool.name}/restored-ours-{i}"))
            destroy_dataset(f"{pool.name}/restored-ours-{i}")

        def run_shell_once(i: int) -> None:
            target = f"{pool.name}/restored-shell-{i}"
            command = f"{ssh} cat {stored} | zstd -d -q | zfs receive {target}"
            shell.append(run_shell(["sh", "-c", command], None) | {"raw": raw})
            destroy_dataset(target)

        for i in range(args.rounds):  # alternate who goes first: no position bias
            first, second = (
                (run_ours_once, run_shell_once) if i % 2 else (run_shell_once, run_ours_once)
            )
            first(i)
            second(i)
        print(f"stream: {raw / MB:.0f} MiB raw, {stored.stat().st_size / MB:.0f} MiB stored")
        for name, runs in (("ours (sftp)", ours), ("shell ssh cat|zstd -d", shell)):
            rates = [r["raw"] / 1e6 / r["seconds"] for r in runs]
            rss = max(r["rss_mb"] for r in runs)
            listed = ", ".join(f"{x:.0f}" for x in rates)
            print(
                f"{name:24} {statistics.median(rates):8.1f} MB/s (runs {listed}), RSS {rss:.0f} MB"
            )
        ratio = statistics.median(r["raw"] / r["seconds"] for r in ours) / statistics.median(
            r["raw"] / r["seconds"] for r in shell
        )
        print(f"ratio ours / shell restore: {ratio:.2f}x (target >= 1.0)")


if __name__ == "__main__":
    main()
