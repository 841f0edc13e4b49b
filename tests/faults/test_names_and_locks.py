"""Names the server cannot hold, and locks left by runs that died or still run elsewhere."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.faults import (
    SlowTarget,
    leftovers,
    python_env,
    sha256sum_check,
    stored_files,
)
from tests.support.services import Pool, SshServer
from tests.support.zfsdata import SNAP, create_member, snapshot, write_member_data
from zfs_offsite.archive.lock import LOCK_NAME, boot_id, pid_namespace
from zfs_offsite.errors import LockBusyError, NameTooLongError, PermanentError
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.plan.backup import Action
from zfs_offsite.settings import Settings

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("local", [False, True])
def test_a_name_too_long_for_the_server_is_one_line_and_permanent(
    pool_factory: Callable[[], Pool],
    sftp_dir: Path,
    settings_for: Callable[..., Settings],
    local: bool,
) -> None:
    pool = pool_factory()
    dataset = create_member(pool.name, "n" * 90)
    write_member_data(Path("/") / dataset, 1, 1)
    first, second = "a" * 100 + "-1", "a" * 100 + "-2"  # legal ZFS names; the full's file fits
    snapshot(dataset, first)
    settings = settings_for(pool, sftp_dir, local=local)
    (member,) = discover_members(settings)
    assert backup_member(settings, member).action is Action.FULL
    snapshot(dataset, second)
    (member,) = discover_members(settings)
    with pytest.raises(NameTooLongError) as caught:
        backup_member(settings, member)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"member {'n' * 90}: the backup file name elabfs-nnn")
    assert "the backup server allows 255 per name" in message
    assert "shorten the snapshot naming schema or the dataset name" in message
    assert not caught.value.retryable
    assert leftovers(sftp_dir) == []
    assert len(stored_files(sftp_dir)) == 3  # the full and its two sidecars, untouched


def write_lock(directory: Path, holder: dict[str, object], age: float = 0.0) -> Path:
    """A lock file as another run left it, owned like the archive (the SFTP user)."""
    directory.mkdir(parents=True, exist_ok=True)
    owner = os.stat(directory.parent)
    os.chown(directory, owner.st_uid, owner.st_gid)
    path = directory / LOCK_NAME
    path.write_text(json.dumps(holder))
    os.chown(path, owner.st_uid, owner.st_gid)
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def holder(
    pid: int, boot: str, host: str = os.uname().nodename, pid_ns: str = ""
) -> dict[str, object]:
    return {
        "host": host,
        "pid": pid,
        "boot_id": boot,
        "pid_ns": pid_ns or pid_namespace(),
        "run": "backup-nas-2026-11-26-0230",
        "purpose": "backup",
        "started": "2026-11-26T02:30:00+00:00",
        "token": "feedfacefeedface",
    }


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@pytest.mark.parametrize("client", ["openssh", "paramiko"])
def test_lock_of_a_dead_process_on_this_machine_is_taken_over(
    source_pool: Pool, sftp_dir: Path, settings_for: Callable[..., Settings], client: str
) -> None:
    settings = settings_for(source_pool, sftp_dir, client=client)
    alice = next(m for m in discover_members(settings) if m.name == "alice")
    write_lock(sftp_dir / "alice", holder(dead_pid(), boot_id()))
    started = time.monotonic()
    assert backup_member(settings, alice).action is Action.FULL
    assert time.monotonic() - started < 20  # taken over at once, no waiting
    sha256sum_check(sftp_dir)
    assert leftovers(sftp_dir) == []


def test_live_lock_of_another_host_is_never_broken(
    source_pool: Pool, tmp_path: Path, settings_for: Callable[..., Settings]
) -> None:
    archive = tmp_path / "archive"
    settings = settings_for(source_pool, archive, local=True)
    settings = settings.model_copy(
        update={"lock": settings.lock.model_copy(update={"wait_seconds": 3.0})}
    )
    alice = next(m for m in discover_members(settings) if m.name == "alice")
    lock = write_lock(archive / "alice", holder(4242, "other-boot", host="nas2"), age=60)
    with pytest.raises(LockBusyError) as caught:
        backup_member(settings, alice)
    assert str(caught.value).startswith(
        "member alice: backup run backup-nas-2026-11-26-0230 on nas2 (pid 4242) since "
        "2026-11-26T02:30:00+00:00 is writing to it"
    )
    assert lock.exists() and json.loads(lock.read_text())["token"] == "feedfacefeedface"
    assert stored_files(archive) == []
    # Untouched for longer than lock.stale_seconds: that host's run is gone.
    write_lock(archive / "alice", holder(4242, "other-boot", host="nas2"), age=3600)
    assert backup_member(settings, alice).action is Action.FULL
    assert not lock.exists()
    assert [p.name for p in stored_files(archive)] == [
        f"elabfs-alice@{SNAP}.zst" + s for s in ("", ".json", ".sha256")
    ]


@pytest.mark.parametrize("local", [False, True])
def test_backup_never_writes_through_a_symlinked_member_directory(
    source_pool: Pool,
    sftp_dir: Path,
    settings_for: Callable[..., Settings],
    tmp_path: Path,
    local: bool,
) -> None:
    elsewhere = sftp_dir.parent / f"{sftp_dir.name}-elsewhere"
    elsewhere.mkdir()
    try:
        (sftp_dir / "alice").symlink_to(elsewhere)
        settings = settings_for(source_pool, sftp_dir, local=local)
        alice = next(m for m in discover_members(settings) if m.name == "alice")
        with pytest.raises(PermanentError) as caught:
            backup_member(settings, alice)
        assert str(caught.value) == (
            "member alice: alice on the backup server is a symlink (never followed), not a "
            "directory: make it a real directory (or point target.url at where it links)"
        )
        assert list(elsewhere.iterdir()) == []
    finally:
        shutil.rmtree(elsewhere, ignore_errors=True)


@pytest.mark.parametrize(
    "content",
    [
        '{"host": "HOST", "pid": "abc", "boot_id": "BOOT", "run": "x", "purpose": "backup", '
        '"started": "2026", "token": "t"}',
        '{"host": "HOST", "pid": 1e30, "boot_id": "BOOT"}',
        "[]",
        "\x00\xff",
    ],
)
def test_a_lock_file_of_any_content_is_judged_by_its_age(
    source_pool: Pool, tmp_path: Path, settings_for: Callable[..., Settings], content: str
) -> None:
    archive = tmp_path / "archive"
    settings = settings_for(source_pool, archive, local=True)
    settings = settings.model_copy(
        update={"lock": settings.lock.model_copy(update={"wait_seconds": 1.0})}
    )
    alice = next(m for m in discover_members(settings) if m.name == "alice")
    (archive / "alice").mkdir(parents=True)
    lock = archive / "alice" / LOCK_NAME
    lock.write_text(content.replace("HOST", os.uname().nodename).replace("BOOT", boot_id()))
    with pytest.raises(LockBusyError, match="a run whose lock file is unreadable"):
        backup_member(settings, alice)
    os.utime(lock, (time.time() - 3600, time.time() - 3600))
    assert backup_member(settings, alice).action is Action.FULL


@pytest.mark.parametrize("kind", ["directory", "dangling symlink", "symlink to an old file"])
def test_a_lock_that_is_not_a_file_is_never_followed_or_removed(
    source_pool: Pool, tmp_path: Path, settings_for: Callable[..., Settings], kind: str
) -> None:
    archive = tmp_path / "archive"
    settings = settings_for(source_pool, archive, local=True)
    alice = next(m for m in discover_members(settings) if m.name == "alice")
    (archive / "alice").mkdir(parents=True)
    lock = archive / "alice" / LOCK_NAME
    old = tmp_path / "old-file"
    old.write_text("keep me")
    os.utime(old, (0, 0))
    if kind == "directory":
        lock.mkdir()
    else:
        lock.symlink_to(old if kind == "symlink to an old file" else tmp_path / "nowhere")
    with pytest.raises(PermanentError) as caught:
        backup_member(settings, alice)
    what = "a directory" if kind == "directory" else "a symlink"
    assert str(caught.value) == (
        f"member alice: alice/{LOCK_NAME} is {what}, not zfs-offsite's lock file: it is never "
        "followed or removed; move it aside"
    )
    assert lock.is_dir() if kind == "directory" else lock.is_symlink()
    assert old.read_text() == "keep me"
    assert stored_files(archive) == []


def test_a_lock_in_another_pid_namespace_is_never_broken(
    big_member: Pool, sftp_dir: Path, sshd: SshServer, slow_target: Callable[[int], SlowTarget]
) -> None:
    """Two containers on one host share its name and boot id, not their pids."""
    env = python_env(
        slow_target(3_000_000).env(sshd, big_member, sftp_dir)
        | {"ZFS_OFFSITE_LOCK__WAIT_SECONDS": "0"}
    )
    first = subprocess.Popen(
        [sys.executable, "-m", "tests.support.backup_once"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(sftp_dir.rglob("*.partial")):
        assert time.monotonic() < deadline and first.poll() is None, "the first run never started"
        time.sleep(0.1)
    second = subprocess.run(
        [
            "unshare",
            "--pid",
            "--fork",
            "--mount-proc",
            sys.executable,
            "-m",
            "tests.support.backup_once",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out, _ = first.communicate(timeout=300)
    assert json.loads(out.strip().splitlines()[-1])["erin"]["action"] == "full"
    erin = json.loads(second.stdout.strip().splitlines()[-1])["erin"]
    assert erin["type"] == "LockBusyError", erin
    assert f"(pid {first.pid})" in erin["error"]
    sha256sum_check(sftp_dir)
    assert leftovers(sftp_dir) == []
