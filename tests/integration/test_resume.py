"""A connection cut at ~80 % of a big upload, then the retry: only the rest goes on the wire.

One member holds 336 MiB of random data (incompressible: the stored file is
about as big as the stream). The tests' TCP proxy cuts the SFTP connection
once 80 % of the stream went up, and counts what the retry sends after the
cut. The stored file is then checked as a user would: `sha256sum -c`, and
`zstd -d | zfs receive` into another pool with the snapshot's GUID compared.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from tests.support.faults import leftovers, python_env, sha256sum_check
from tests.support.proxy import CuttingProxy
from tests.support.services import Pool, SshServer, create_pool
from tests.support.zfsdata import SNAP, guid, random_member, snapshot
from zfs_offsite import cancel
from zfs_offsite.connect import open_store
from zfs_offsite.errors import Cancelled, IntegrityError, StoreError
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.plan.backup import Action
from zfs_offsite.report.run_report import MemberOutcome, row
from zfs_offsite.settings import Settings
from zfs_offsite.zfs.protect import mark_tag

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
DATA_MIB = 336
FILE = f"elabfs-erin@{SNAP}.zst"


@pytest.fixture(scope="module")
def big_pool(zfs_fuse: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    """A sparse 1 GiB pool whose member holds DATA_MIB of random data, snapshotted."""
    pool = create_pool(tmp_path_factory.mktemp("resume"), size_mb=1024)
    random_member(pool.name, pool.mountpoint, "erin", DATA_MIB)
    yield pool
    pool.destroy()


@pytest.fixture
def receiving_pool(pool_factory: Callable[[], Pool]) -> Pool:
    return pool_factory()


def cut_at_80_percent(
    pool: Pool,
    archive: Path,
    sshd: SshServer,
    settings_for: Callable[..., Settings],
    tmp_path: Path,
    client: str,
) -> tuple[CuttingProxy, Settings]:
    """The first upload, cut by the proxy after 80 % of the stream; the partial stays."""
    proxy = CuttingProxy(sshd.port, cut_after=int(0.8 * DATA_MIB * MiB), cuts=1)
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts_line(proxy.port))
    settings = settings_for(pool, archive, port=proxy.port, known_hosts=known, client=client)
    (member,) = discover_members(settings)
    with pytest.raises(StoreError) as caught:
        backup_member(settings, member)
    assert proxy.cut.is_set() and caught.value.retryable
    kept = [n for n in leftovers(archive) if n.endswith(".partial")]
    assert len(kept) == 2 and any(".ckpt." in n for n in kept), kept  # the partial + checkpoints
    return proxy, settings


def restored_guid(archive: Path, into: Pool) -> int:
    """`zstd -d -c <file> | zfs receive`, as a user restores without this tool."""
    target = f"{into.name}/erin"
    unpack = subprocess.Popen(
        ["zstd", "-d", "-c", "-q", str(archive / "erin" / FILE)], stdout=subprocess.PIPE
    )
    received = subprocess.run(
        ["zfs", "receive", target], stdin=unpack.stdout, capture_output=True, text=True
    )
    assert unpack.stdout is not None
    unpack.stdout.close()
    assert unpack.wait() == 0 and received.returncode == 0, received.stderr
    return guid(f"{target}@{SNAP}")


def test_a_retry_after_a_cut_sends_only_the_rest(
    big_pool: Pool,
    receiving_pool: Pool,
    sftp_dir: Path,
    sshd: SshServer,
    settings_for: Callable[..., Settings],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy, settings = cut_at_80_percent(big_pool, sftp_dir, sshd, settings_for, tmp_path, "openssh")
    (member,) = discover_members(settings)
    try:
        with caplog.at_level(logging.INFO, logger="zfs_offsite"):
            result = backup_member(settings, member)  # the retry, through the same proxy
    finally:
        proxy.close()
    assert result.action is Action.FULL and result.stream is not None
    size = (sftp_dir / "erin" / FILE).stat().st_size
    print(
        f"stored {size} bytes; resumed {result.stream.resumed_bytes}; sent after the cut "
        f"{proxy.after_cut} ({proxy.after_cut / size:.1%} of the file)"
    )
    assert result.stream.resumed_bytes >= 192 * MiB
    assert proxy.after_cut < 0.30 * size
    # The report counts what was sent (on the wire after the cut), not the whole file.
    assert result.stream.sent_bytes <= proxy.after_cut
    figures = row(MemberOutcome("erin", result))
    assert float(figures["resumed_mb"]) == round(result.stream.resumed_bytes / 1e6, 1)
    assert "match the regenerated stream; sending from there" in caplog.text
    sha256sum_check(sftp_dir)
    assert leftovers(sftp_dir) == []  # no partial, no checkpoints, no lock
    assert restored_guid(sftp_dir, receiving_pool) == guid(f"{big_pool.name}/elabfs-erin@{SNAP}")


def test_a_stream_that_does_not_reproduce_is_uploaded_afresh(
    big_pool: Pool,
    receiving_pool: Pool,
    sftp_dir: Path,
    sshd: SshServer,
    settings_for: Callable[..., Settings],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy, settings = cut_at_80_percent(
        big_pool, sftp_dir, sshd, settings_for, tmp_path, "paramiko"
    )
    # Between the attempts the compression level changed: the stored bytes cannot be continued.
    level5 = settings.model_copy(
        update={"compression": settings.compression.model_copy(update={"level": 5})}
    )
    (member,) = discover_members(level5)
    try:
        with caplog.at_level(logging.INFO, logger="zfs_offsite"):
            result = backup_member(level5, member)
    finally:
        proxy.close()
    assert result.action is Action.FULL and result.stream is not None
    size = (sftp_dir / "erin" / FILE).stat().st_size
    assert result.stream.resumed_bytes == 0 and proxy.after_cut > size
    assert "not resumed: the stream is not the same (compression level 3 -> 5)" in caplog.text
    sha256sum_check(sftp_dir)
    assert leftovers(sftp_dir) == []
    assert restored_guid(sftp_dir, receiving_pool) == guid(f"{big_pool.name}/elabfs-erin@{SNAP}")


@pytest.mark.parametrize("client", ["openssh", "paramiko", "local"])
def test_a_partial_file_is_cut_and_continued_in_place(
    sftp_dir: Path, sshd: SshServer, settings_for: Callable[..., Settings], client: str
) -> None:
    """What a resume asks of each store: cut an existing file at an offset, write on, flush."""
    no_pool = Pool("unused", Path("/nonexistent"))
    if client == "local":
        settings = settings_for(no_pool, sftp_dir, local=True)
    else:
        settings = settings_for(no_pool, sftp_dir, client=client)
    with closing(open_store(settings.target)) as store:
        with store.open_write("f.partial") as first:
            first.write(b"a" * 1000)
        with store.open_append("f.partial", 600) as again:
            again.write(b"b" * 100)
            again.sync()
            assert (sftp_dir / "f.partial").read_bytes() == b"a" * 600 + b"b" * 100
            again.write(b"c" * 10)
        assert (sftp_dir / "f.partial").read_bytes() == b"a" * 600 + b"b" * 100 + b"c" * 10
        with pytest.raises(IntegrityError, match="fewer than the 5000 to resume after"):
            store.open_append("f.partial", 5000)
        with pytest.raises(FileNotFoundError):
            store.open_append("gone.partial", 0)


def test_the_next_run_resumes_what_a_killed_run_left(
    big_pool: Pool, tmp_path: Path, settings_for: Callable[..., Settings]
) -> None:
    """A run SIGKILLed mid-upload leaves its lock, partial and checkpoints (local target);
    the next run takes the dead lock over and continues the partial."""
    archive = killed_after_two_checkpoints(big_pool, tmp_path / "archive")
    assert (archive / "erin" / ".zfs-offsite.lock").exists()
    settings = settings_for(big_pool, archive, local=True)
    (member,) = discover_members(settings)
    result = backup_member(settings, member)
    assert result.action is Action.FULL and result.stream is not None
    assert result.stream.resumed_bytes >= 128 * MiB
    sha256sum_check(archive)
    assert leftovers(archive) == []


def killed_after_two_checkpoints(pool: Pool, archive: Path) -> Path:
    """A backup process to a local `archive`, SIGKILLed once two checkpoints are recorded."""
    archive.mkdir()
    env = python_env(
        {"ZFS_OFFSITE_SOURCE__POOL": pool.name, "ZFS_OFFSITE_TARGET__URL": f"file://{archive}"}
    )
    first = subprocess.Popen([sys.executable, "-m", "tests.support.backup_once"], env=env)
    deadline = time.monotonic() + 120
    while checkpoints_recorded(archive) < 2:
        assert time.monotonic() < deadline and first.poll() is None, "no checkpoints recorded"
        time.sleep(0.05)
    first.kill()
    first.wait()
    return archive


def checkpoints_recorded(archive: Path) -> int:
    """Complete checkpoint lines (the header not counted) in the member's checkpoint file."""
    found = sorted(archive.glob("erin/*.ckpt.partial"))
    return max(0, found[0].read_bytes().count(b"\n") - 1) if found else 0


def test_the_next_night_finishes_the_cut_full_before_the_newer_snapshot(
    big_pool: Pool, tmp_path: Path, settings_for: Callable[..., Settings]
) -> None:
    """The zfs_uploader#77 loop: a full cut in the night, a newer snapshot by the next one.

    The next run finishes the cut full of the older snapshot (from its checkpoints)
    instead of starting a full of the newer one from byte 0; the run after sends
    the newer snapshot as an incremental.
    """
    archive = killed_after_two_checkpoints(big_pool, tmp_path / "archive")
    dataset = f"{big_pool.name}/elabfs-erin"
    (big_pool.mountpoint / "elabfs-erin" / "later.txt").write_text("the next day's work\n")
    snapshot(dataset, "later")
    try:
        settings = settings_for(big_pool, archive, local=True)
        (member,) = discover_members(settings)
        resumed = backup_member(settings, member)
        assert (resumed.action, resumed.snapshot) == (Action.FULL, SNAP), resumed.reason
        assert "resuming its upload that was cut (later, the newest" in resumed.reason
        assert resumed.stream is not None and resumed.stream.resumed_bytes >= 128 * MiB
        following = backup_member(settings, member)
        assert (following.action, following.base, following.snapshot) == (
            Action.INCREMENTAL,
            SNAP,
            "later",
        )
        sha256sum_check(archive)
        assert leftovers(archive) == []
    finally:
        tag = mark_tag(str(settings_for(big_pool, archive, local=True).target.parsed))
        subprocess.run(["zfs", "release", tag, f"{dataset}@later"], capture_output=True)
        subprocess.run(["zfs", "destroy", f"{dataset}@later"], check=True)


# --- found by the attack review of issue 14 -------------------------------------------


def _data_partial(archive: Path) -> Path:
    (partial,) = [p for p in (archive / "erin").glob("*.partial") if ".ckpt." not in p.name]
    return partial


def test_a_partial_damaged_between_attempts_is_never_committed_as_complete(
    big_pool: Pool, tmp_path: Path, settings_for: Callable[..., Settings]
) -> None:
    """Bit rot (or a second writer) in an already checkpointed chunk: the resume reads the
    stored bytes back, keeps nothing from the damaged chunk on, and the committed file
    passes `sha256sum -c`."""
    archive = killed_after_two_checkpoints(big_pool, tmp_path / "archive")
    partial = _data_partial(archive)
    with partial.open("r+b") as handle:  # one byte inside the first checkpointed chunk
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    settings = settings_for(big_pool, archive, local=True)
    (member,) = discover_members(settings)
    result = backup_member(settings, member)
    assert result.action is Action.FULL
    sha256sum_check(archive / "erin")
    assert leftovers(archive / "erin") == []


def test_a_checkpoint_file_that_is_a_link_is_not_followed(
    big_pool: Pool, tmp_path: Path, settings_for: Callable[..., Settings]
) -> None:
    archive = killed_after_two_checkpoints(big_pool, tmp_path / "archive")
    (checkpoints,) = (archive / "erin").glob("*.ckpt.partial")
    outside = tmp_path / "outside.txt"
    outside.write_bytes(checkpoints.read_bytes())
    before = outside.read_bytes()
    checkpoints.unlink()
    checkpoints.symlink_to(outside)
    settings = settings_for(big_pool, archive, local=True)
    (member,) = discover_members(settings)
    backup_member(settings, member)
    assert outside.read_bytes() == before, "a file outside the archive was written through a link"
    sha256sum_check(archive / "erin")


class _StopWhileChecking(logging.Handler):
    """Requests the process-wide stop (what SIGTERM, Ctrl-C and a Cancel do) as soon as the
    retry starts checking the earlier attempt's checkpoints, before it writes anything."""

    def emit(self, record: logging.LogRecord) -> None:
        if "against the regenerated stream" in record.getMessage():
            cancel.request("SIGTERM")


def test_a_stop_while_checking_keeps_the_earlier_attempts_partial(
    big_pool: Pool, tmp_path: Path, settings_for: Callable[..., Settings]
) -> None:
    """A reboot (SIGTERM) or a Cancel while a resume only reads the earlier run's partial
    must not delete it: the run after that resumes it."""
    archive = killed_after_two_checkpoints(big_pool, tmp_path / "archive")
    kept = sorted(p.name for p in (archive / "erin").glob("*.partial"))
    settings = settings_for(big_pool, archive, local=True)
    (member,) = discover_members(settings)
    hook, logger = _StopWhileChecking(), logging.getLogger("zfs_offsite")
    level = logger.level
    logger.addHandler(hook)
    logger.setLevel(logging.INFO)
    try:
        with pytest.raises(Cancelled):
            backup_member(settings, member)
    finally:
        logger.removeHandler(hook)
        logger.setLevel(level)
        cancel.reset()
    assert sorted(p.name for p in (archive / "erin").glob("*.partial")) == kept
    assert backup_member(settings, member).action is Action.FULL
    sha256sum_check(archive / "erin")
