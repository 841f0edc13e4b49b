"""A backup server that stops making progress mid-upload: the attempt fails, it never waits.

Each case freezes the real server under a running upload (the SFTP session process
of the test sshd stopped with SIGSTOP; a loop-mounted ext4 frozen with `fsfreeze`)
and expects what an admin would check: the run fails within about target.timeout
with one line saying the server made no progress, the failure is one a retry may
cure, no file got a final name, and `zfs send` is gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from tests.support.faults import sftp_sessions, stored_files, zfs_sends
from tests.support.services import Pool, SshServer
from zfs_offsite.connect import open_store
from zfs_offsite.errors import StallError, ZfsOffsiteError
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.settings import Settings, load_settings

pytestmark = pytest.mark.integration
TIMEOUT = 5
MARGIN = 20  # a loaded two-core machine; a hang would take far longer than this


def run_in_thread(settings: Settings) -> tuple[threading.Thread, list[BaseException]]:
    (member,) = discover_members(settings)
    caught: list[BaseException] = []

    def run() -> None:
        try:
            backup_member(settings, member)
        except BaseException as exc:
            caught.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    return worker, caught


def wait_for_partial(archive: Path, worker: threading.Thread, caught: list) -> None:
    """Until the upload has stored some bytes (and is still running)."""
    deadline = time.monotonic() + 120
    while sum(p.stat().st_size for p in archive.rglob("*.partial") if p.is_file()) < 1 << 20:
        assert worker.is_alive() and time.monotonic() < deadline, caught
        time.sleep(0.1)


def assert_failed_as_stalled(
    worker: threading.Thread, caught: list[BaseException], since: float, pool: Pool, archive: Path
) -> None:
    worker.join(timeout=TIMEOUT + 120)
    took = time.monotonic() - since
    assert not worker.is_alive(), "the upload still waits on a server that makes no progress"
    assert len(caught) == 1, caught
    error = caught[0]
    assert isinstance(error, ZfsOffsiteError), repr(error)
    message = str(error)
    assert f"made no progress for {TIMEOUT} s" in message, message
    assert "\n" not in message
    assert error.retryable, message
    assert took < TIMEOUT + MARGIN, f"failed after {took:.0f} s: {message}"
    assert stored_files(archive) == []
    deadline = time.monotonic() + 10
    while zfs_sends(pool.name) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert zfs_sends(pool.name) == []


@pytest.fixture
def stopped_sessions() -> Iterator[list[int]]:
    """Processes the test stops; each is continued afterwards whatever happens."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


@pytest.mark.parametrize("client", ["openssh", "paramiko"])
def test_an_sftp_server_that_stops_answering_fails_the_attempt(
    big_member: Pool,
    sftp_dir: Path,
    sshd: SshServer,
    stopped_sessions: list[int],
    client: str,
) -> None:
    settings = load_settings(
        source={"pool": big_member.name},
        target={
            "url": f"sftp://{sshd.user}@127.0.0.1:{sshd.port}{sftp_dir}",
            "key_file": str(sshd.client_key),
            "known_hosts": str(sshd.known_hosts),
            "timeout": TIMEOUT,
            "client": client,
            "bandwidth": "2MB/s",  # the 24 MB stream takes about 12 s
        },
    )
    before = set(sftp_sessions(sshd))
    worker, caught = run_in_thread(settings)
    wait_for_partial(sftp_dir, worker, caught)
    sessions = [pid for pid in sftp_sessions(sshd) if pid not in before]
    assert sessions, "no SFTP session of the upload found below the test sshd"
    for pid in sessions:
        os.kill(pid, signal.SIGSTOP)
        stopped_sessions.append(pid)
    assert_failed_as_stalled(worker, caught, time.monotonic(), big_member, sftp_dir)
    for pid in stopped_sessions:
        os.kill(pid, signal.SIGCONT)
    time.sleep(2)  # what the server still had queued lands: never under a final name
    assert stored_files(sftp_dir) == []


@pytest.fixture
def loop_disk(tmp_path: Path) -> Iterator[Path]:
    """A 128 MiB ext4 file system on a loop device, mounted for this test only."""
    image = tmp_path / "stl-disk.img"
    mountpoint = tmp_path / "stl-mnt"
    mountpoint.mkdir()
    with image.open("wb") as handle:
        handle.truncate(128 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["fsfreeze", "-u", str(mountpoint)], check=False, capture_output=True)
        for _ in range(20):  # an abandoned write may still be closing its file
            if subprocess.run(["umount", str(mountpoint)], capture_output=True).returncode == 0:
                break
            time.sleep(0.5)
        else:
            subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_a_frozen_local_disk_fails_the_attempt(big_member: Pool, loop_disk: Path) -> None:
    archive = loop_disk / "archive"
    settings = load_settings(
        source={"pool": big_member.name},
        target={"url": f"file://{archive}", "timeout": TIMEOUT, "bandwidth": "2MB/s"},
    )
    worker, caught = run_in_thread(settings)
    wait_for_partial(archive, worker, caught)
    subprocess.run(["fsfreeze", "-f", str(loop_disk)], check=True)
    try:
        assert_failed_as_stalled(worker, caught, time.monotonic(), big_member, archive)
    finally:
        subprocess.run(["fsfreeze", "-u", str(loop_disk)], check=True)
    time.sleep(2)  # the writes the frozen disk held back land: never under a final name
    assert stored_files(archive) == []


@pytest.mark.parametrize("client", ["openssh", "paramiko"])
def test_reads_and_renames_on_a_stopped_sftp_server_fail_as_stalls(
    sftp_dir: Path, sshd: SshServer, stopped_sessions: list[int], client: str
) -> None:
    (sftp_dir / "erin").mkdir()
    (sftp_dir / "erin" / "file.zst").write_bytes(os.urandom(4 << 20))
    target = load_settings(
        source={"pool": "stl-unused"},
        target={
            "url": f"sftp://{sshd.user}@127.0.0.1:{sshd.port}{sftp_dir}",
            "key_file": str(sshd.client_key),
            "known_hosts": str(sshd.known_hosts),
            "timeout": TIMEOUT,
            "client": client,
        },
    ).target
    before = set(sftp_sessions(sshd))
    with closing(open_store(target)) as store:
        assert store.stat("erin/file.zst") is not None  # connected and answering
        for pid in (p for p in sftp_sessions(sshd) if p not in before):
            os.kill(pid, signal.SIGSTOP)
            stopped_sessions.append(pid)
        assert stopped_sessions
        started = time.monotonic()
        with pytest.raises(StallError, match=f"made no progress for {TIMEOUT} s") as stalled:
            b"".join(store.read_chunks("erin/file.zst"))
        assert time.monotonic() - started < TIMEOUT + MARGIN
        assert stalled.value.retryable and "\n" not in str(stalled.value)
        started = time.monotonic()
        with pytest.raises(StallError):  # the connection is dropped: no second wait
            store.rename("erin/file.zst", "erin/other.zst")
        assert time.monotonic() - started < 2
    assert (sftp_dir / "erin" / "file.zst").exists()
