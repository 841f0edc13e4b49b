"""Fixtures of the OpenZFS VM tests: its pinned host key and a throwaway pool in it.

Every test here is skipped, with the reason printed, unless the VM is up:
start it with `scripts/openzfs-vm.sh` (builds it once, then boots it).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.openzfs_vm import VM_CACHE, VM_PORT, vm_settings
from zfs_offsite.connect import open_runner
from zfs_offsite.errors import ZfsOffsiteError
from zfs_offsite.zfs.commands import detect_features
from zfs_offsite.zfs.runner import Runner


@pytest.fixture(scope="module")
def vm_known_hosts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The VM's pinned host key, under the name our host key check looks up."""
    pinned = VM_CACHE / "known_hosts"
    if not (VM_CACHE / "id_ed25519").exists() or not pinned.exists():
        pytest.skip(f"OpenZFS VM not built ({VM_CACHE} has no key): run scripts/openzfs-vm.sh")
    path = tmp_path_factory.mktemp("vm") / "known_hosts"
    lines = [line.split(None, 1)[1] for line in pinned.read_text().splitlines() if line.strip()]
    path.write_text("".join(f"[127.0.0.1]:{VM_PORT} {key}\n" for key in lines))
    return path


@pytest.fixture
def vm(vm_known_hosts: Path, tmp_path: Path) -> Iterator[tuple[Runner, str, Path]]:
    """A file-backed pool in the VM, destroyed afterwards; skipped if the VM is not up."""
    pool = f"zov{secrets.token_hex(3)}"
    settings = vm_settings(pool, tmp_path / "archive", vm_known_hosts)
    runner = open_runner(settings)
    try:
        features = detect_features(runner)
    except ZfsOffsiteError as exc:
        runner.close()
        pytest.skip(
            f"OpenZFS VM not reachable on 127.0.0.1:{VM_PORT} ({exc}): run scripts/openzfs-vm.sh"
        )
    assert features.bookmarks and features.send_estimate, features
    image = f"/root/{pool}.img"
    runner.run(["truncate", "-s", "512M", image])
    runner.run(["zpool", "create", pool, image])
    try:
        yield runner, pool, vm_known_hosts
    finally:
        runner.run(["zpool", "destroy", "-f", pool], check=False)
        runner.run(["rm", "-f", image], check=False)
        runner.close()
