"""The OpenZFS VM (../shared/tools/openzfs-vm) as the tests reach it: pull-mode settings, data.

Its fixtures are in tests/openzfs/conftest.py; these are the plain builders.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from zfs_offsite.settings import Settings, load_settings
from zfs_offsite.zfs.runner import Runner

VM_CACHE = Path(os.environ.get("OPENZFS_VM_CACHE", "/var/tmp/openzfs-vm"))
VM_PORT = int(os.environ.get("OPENZFS_VM_PORT", "2222"))


def vm_settings(
    pool: str,
    archive: Path,
    known_hosts: Path,
    *,
    encryption: dict[str, Any] | None = None,
    **source: Any,
) -> Settings:
    """Pull mode: zfs runs in the VM over SSH, the archive is a local directory."""
    return load_settings(
        encryption=encryption or {},
        source={
            "pool": pool,
            "ssh_url": f"ssh://root@127.0.0.1:{VM_PORT}",
            "key_file": str(VM_CACHE / "id_ed25519"),
            "known_hosts": str(known_hosts),
            **source,
        },
        target={"url": f"file://{archive}", "timeout": 60},
    )


def add_snapshot(runner: Runner, dataset: str, name: str, megabytes: int = 1) -> None:
    """New random data in the dataset, then a snapshot of it."""
    path = shlex.quote(f"/{dataset}/{name}.bin")
    runner.run(["sh", "-c", f"head -c {megabytes}M /dev/urandom > {path}"])
    runner.run(["zfs", "snapshot", f"{dataset}@{name}"])


def tree_digest(runner: Runner, directory: str) -> str:
    """`sha256sum` of every file under `directory` in the VM, by relative path, sorted."""
    script = 'cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum'
    return runner.run(["sh", "-c", script, "sh", directory]).stdout
