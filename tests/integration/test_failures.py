"""Failures leave nothing under a final name; bad host keys are refused; stray files are kept."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from tests.support.proxy import CuttingProxy
from tests.support.services import Pool, SshServer
from tests.support.zfsdata import SNAP, create_member, snapshot, write_member_data
from zfs_offsite.connect import open_store
from zfs_offsite.errors import ConfigError, HostKeyError, SendError, StoreError
from zfs_offsite.jobs.archive_root import adopt
from zfs_offsite.jobs.backup import backup_member, discover_members, execute_plan, plan_member
from zfs_offsite.plan.backup import Action
from zfs_offsite.remote.store import Store
from zfs_offsite.settings import Settings, load_settings
from zfs_offsite.zfs.runner import LocalProcess, LocalRunner, Process

pytestmark = pytest.mark.integration


@pytest.fixture
def big_member(pool_factory: Callable[[], Pool]) -> Pool:
    """One member with 40 MiB of random data: more than the pipeline's buffers hold."""
    pool = pool_factory()
    dataset = create_member(pool.name, "erin")
    write_member_data(pool.mountpoint / "elabfs-erin", 7, 20)
    snapshot(dataset, SNAP)
    return pool


def final_files(directory: Path) -> list[str]:
    """Files under a final name; partial files and the tool's lock never count as backups."""
    return sorted(
        p.name
        for p in directory.rglob("*")
        if p.is_file() and ".partial" not in p.name and not p.name.startswith(".zfs-offsite")
    )


class KillingRunner(LocalRunner):
    """Runs the real `zfs send`, remembering the process so the test can kill it."""

    process: LocalProcess | None = None

    def start(self, argv: list[str], *, stdin: bool = False) -> Process:  # type: ignore[override]
        self.process = LocalProcess(argv, stdin)
        return self.process


class StoreThatKillsSend:
    """Wraps a real store: at the first write it SIGKILLs the real `zfs send` mid-stream."""

    def __init__(self, inner: Store, runner: KillingRunner) -> None:
        self.inner, self.runner, self.description = inner, runner, inner.description

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def open_write(self, path: str) -> BinaryIO:
        handle = self.inner.open_write(path)
        runner = self.runner

        class Writer:
            killed = False

            def write(self, data: bytes) -> int:
                if not self.killed and runner.process is not None:
                    os.kill(runner.process._popen.pid, signal.SIGKILL)
                    self.killed = True
                return handle.write(data)

            def __enter__(self) -> Writer:
                return self

            def __exit__(self, *exc: object) -> None:
                handle.close()

        return Writer()  # type: ignore[return-value]


def test_send_killed_mid_stream_leaves_no_final_file(
    big_member: Pool, sftp_dir: Path, settings_for: Callable[..., Settings]
) -> None:
    settings = settings_for(big_member, sftp_dir)
    (member,) = discover_members(settings)
    runner = KillingRunner()
    store = open_store(settings.target)
    try:
        plan, _ = plan_member(settings, store, member)
        with pytest.raises(SendError) as caught:
            execute_plan(settings, runner, StoreThatKillsSend(store, runner), plan)  # type: ignore[arg-type]
    finally:
        store.close()
    assert "zfs send exited -9" in str(caught.value)
    assert caught.value.retryable
    assert final_files(sftp_dir) == []
    # The next run starts over and completes: the partial never counted as a backup.
    assert backup_member(settings, member).action is Action.FULL
    assert final_files(sftp_dir) == [
        f"elabfs-erin@{SNAP}.zst" + s for s in ("", ".json", ".sha256")
    ]


@pytest.mark.parametrize("client", ["openssh", "paramiko"])
def test_connection_cut_mid_upload_leaves_no_final_file(
    big_member: Pool,
    sftp_dir: Path,
    sshd: SshServer,
    settings_for: Callable[..., Settings],
    tmp_path: Path,
    client: str,
) -> None:
    proxy = CuttingProxy(sshd.port, cut_after=5 * 1024 * 1024)
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts_line(proxy.port))
    settings = settings_for(big_member, sftp_dir, port=proxy.port, known_hosts=known, client=client)
    (member,) = discover_members(settings)
    try:
        with pytest.raises(StoreError) as caught:
            backup_member(settings, member)
    finally:
        proxy.close()
    assert proxy.cut.is_set()
    assert caught.value.retryable
    assert final_files(sftp_dir) == []
    # The retry (same process, the lock of the broken attempt still on the server) completes.
    direct = settings_for(big_member, sftp_dir, client=client)
    assert backup_member(direct, member).action is Action.FULL
    assert final_files(sftp_dir) == [
        f"elabfs-erin@{SNAP}.zst" + s for s in ("", ".json", ".sha256")
    ]
    assert not (sftp_dir / "erin" / ".zfs-offsite.lock").exists()


@pytest.mark.parametrize("client", ["openssh", "paramiko"])
def test_changed_host_key_is_refused(
    source_pool: Pool,
    sftp_dir: Path,
    settings_for: Callable[..., Settings],
    sshd: SshServer,
    tmp_path: Path,
    client: str,
) -> None:
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {other}\n")
    settings = settings_for(source_pool, sftp_dir, known_hosts=known, client=client)
    member = discover_members(settings)[0]
    with pytest.raises(HostKeyError, match="differs"):
        backup_member(settings, member)
    known.write_text("")
    with pytest.raises(HostKeyError, match="not in"):
        backup_member(settings, member)
    assert final_files(sftp_dir) == []


def test_stray_files_are_ignored_and_kept(
    source_pool: Pool,
    sftp_dir: Path,
    settings_for: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = settings_for(source_pool, sftp_dir, local=True)
    alice = sftp_dir / "alice"
    alice.mkdir()
    strays = {"notes.txt": b"x", "elabfs-bob@auto-1.gz": b"wrong member", "broken.gz": b"?"}
    for name, data in strays.items():
        (alice / name).write_bytes(data)
    member = next(m for m in discover_members(settings) if m.name == "alice")
    adopt(settings)  # a backup-named file without sidecars: the root looks seed-made
    assert backup_member(settings, member).action is Action.FULL
    for name, data in strays.items():
        assert (alice / name).read_bytes() == data
    assert "ignoring alice/notes.txt" in caplog.text


def test_missing_pool_is_one_line_naming_the_setting(zfs_fuse: None, tmp_path: Path) -> None:
    config = tmp_path / "zfs-offsite.toml"
    config.write_text('# the NAS\n\n[source]\npool = "no-such-pool-here"\n')
    settings = load_settings(config)
    with pytest.raises(ConfigError) as caught:
        discover_members(settings)
    assert str(caught.value).startswith(f"setting source.pool ({config}:4): no pool")
