"""Faults on the real store: `zfs-offsite backup` to an s3:// target on the RGW, through a
TCP proxy that cuts, throttles or refuses (tests/support/tcp_proxy.py).

Each case asserts what an admin sees: the exit code, the member's one error line
naming the fix, nothing under a final name that looks like a backup (no stream
object, `status` shows no backup), and that the next night completes. A bucket quota
and a skewed clock are the S3 tier's (tests/s3/test_s3_uploads.py,
test_s3_small_writes.py, test_s3_store.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import CLI, Cli, Result, base_env
from tests.support.rgw import Rgw
from tests.support.services import Pool, create_pool
from tests.support.tcp_proxy import FaultyProxy
from tests.support.zfsdata import populate_members
from zfs_offsite.archive.identity import MARKER_NAME
from zfs_offsite.errors import IntegrityError
from zfs_offsite.remote.s3 import S3Store
from zfs_offsite.remote.store import write_new_file

pytestmark = pytest.mark.integration
PREFIX = "lab"
MEMBER = "erin"


@pytest.fixture(scope="module")
def pool(zfs_fuse: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    """One member with ~8 MB of incompressible data: a stream of one part, ~9 MB."""
    pool = create_pool(tmp_path_factory.mktemp("w6-pool"), prefix="w6f")
    populate_members(pool.name, pool.mountpoint, (MEMBER,), megabytes=8)
    yield pool
    pool.destroy()


@pytest.fixture
def proxy(rgw: Rgw) -> Iterator[FaultyProxy]:
    front = FaultyProxy(int(rgw.endpoint.rsplit(":", 1)[1]))
    yield front
    front.close()


def cli_for(rgw: Rgw, bucket: str, pool: Pool, endpoint: str, root: Path) -> Cli:
    """The CLI on `pool`, its target the bucket at `endpoint`, keys from the environment."""
    (root / "cwd").mkdir(parents=True, exist_ok=True)
    env = base_env(root / "prefect") | {
        "ZFS_OFFSITE_SOURCE__POOL": pool.name,
        "ZFS_OFFSITE_TARGET__URL": f"s3://{bucket}/{PREFIX}",
        "ZFS_OFFSITE_TARGET__S3__ENDPOINT_URL": endpoint,
        "ZFS_OFFSITE_TARGET__TIMEOUT": "10",
        "ZFS_OFFSITE_RETRIES": "0",
        "AWS_ACCESS_KEY_ID": rgw.access_key,
        "AWS_SECRET_ACCESS_KEY": rgw.secret_key,
        "AWS_SHARED_CREDENTIALS_FILE": str(root / "no-credentials"),
        "AWS_CONFIG_FILE": str(root / "no-config"),
        "COLUMNS": "10000",
    }
    env = {k: v for k, v in env.items() if k not in ("AWS_ENDPOINT_URL", "AWS_CA_BUNDLE")}
    return Cli(env, root / "cwd")


def member_error(done: Result) -> str:
    """The member's error cell of the backup table: the one line an admin reads."""
    rows = [line for line in done.stdout.splitlines() if f"│ {MEMBER} " in line]
    assert len(rows) == 1, done.output[-3000:]
    return rows[0].rstrip(" │").rsplit("│", 1)[1].strip()


def objects(rgw: Rgw, bucket: str) -> dict[str, int]:
    listed = rgw.client().list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: o["Size"] for o in listed}


def streams(rgw: Rgw, bucket: str) -> list[str]:
    """Objects under a backup's final name (the stream and its sidecars)."""
    return sorted(k for k in objects(rgw, bucket) if "@" in k.rsplit("/", 1)[-1])


def uploads(rgw: Rgw, bucket: str) -> list[str]:
    found = rgw.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return [u["Key"] for u in found]


def archived(cli: Cli) -> tuple[object, object]:
    """What `status` says is backed up of the member: (newest archived, backup files);
    (None, 0) while the archive has no root yet (status: critical, "missing")."""
    done = cli("status", "--json")
    if done.code == 2 and "is missing" in done.stderr:
        return None, 0
    assert done.stdout, done.output[-2000:]
    (member,) = json.loads(done.stdout)["members"]
    return member["newest_archived"], member["backup_files"]


def assert_complete_night(rgw: Rgw, bucket: str, done: Result) -> None:
    """Exit 0, one stream whose bytes match its .sha256, no upload left open."""
    assert done.code == 0, done.output[-3000:]
    s3 = rgw.client()
    zst = [k for k in objects(rgw, bucket) if k.endswith(".zst")]
    assert len(zst) == 1, objects(rgw, bucket)
    body = s3.get_object(Bucket=bucket, Key=zst[0])["Body"].read()
    line = s3.get_object(Bucket=bucket, Key=zst[0] + ".sha256")["Body"].read().decode()
    assert line.split()[0] == hashlib.sha256(body).hexdigest()
    assert f"{zst[0]}.json" in objects(rgw, bucket)
    assert uploads(rgw, bucket) == []


def test_a_connection_cut_mid_part_every_time_fails_in_one_line_and_the_next_night_completes(
    rgw: Rgw, bucket: str, pool: Pool, proxy: FaultyProxy, tmp_path: Path
) -> None:
    cli = cli_for(rgw, bucket, pool, proxy.url, tmp_path)
    direct = cli.with_env(ZFS_OFFSITE_TARGET__S3__ENDPOINT_URL=rgw.endpoint)
    assert archived(direct) == (None, 0)
    proxy.cut_after(2_000_000)  # every connection dies 2 MB into the part
    done = cli("backup")
    assert done.code == 1, done.output[-3000:]
    assert proxy.cuts >= 1
    line = member_error(done)
    assert "cannot reach the S3 endpoint" in line and "check target.s3.endpoint_url" in line
    assert streams(rgw, bucket) == []
    assert archived(direct) == (None, 0)
    proxy.heal()
    assert_complete_night(rgw, bucket, cli("backup"))


def test_a_single_cut_mid_part_is_sent_again_and_the_night_completes(
    rgw: Rgw, bucket: str, pool: Pool, proxy: FaultyProxy, tmp_path: Path
) -> None:
    cli = cli_for(rgw, bucket, pool, proxy.url, tmp_path)
    proxy.rate = 2_000_000  # the part takes ~5 s: the cut lands in it
    done: list[Result] = []
    night = _background(cli, done)
    _wait_for(lambda: proxy.sent > 3_000_000, night, "the part never started")
    proxy.cut_now()
    proxy.rate = None
    night.join(300)
    assert proxy.cuts >= 1
    assert_complete_night(rgw, bucket, done[0])


def test_sigkill_mid_upload_leaves_nothing_complete_and_the_next_night_completes(
    rgw: Rgw, bucket: str, pool: Pool, proxy: FaultyProxy, tmp_path: Path
) -> None:
    cli = cli_for(rgw, bucket, pool, proxy.url, tmp_path)
    direct = cli.with_env(ZFS_OFFSITE_TARGET__S3__ENDPOINT_URL=rgw.endpoint)
    assert archived(direct) == (None, 0)
    proxy.rate = 1_000_000
    process = subprocess.Popen(
        [str(CLI), "backup"],
        env=cli.env,
        cwd=cli.cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while proxy.sent < 3_000_000:
            assert process.poll() is None, "the backup ended before the kill"
            assert time.monotonic() < deadline, "the upload never started"
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait(30)
    assert uploads(rgw, bucket), "the killed run left no upload: the kill came too late"
    assert streams(rgw, bucket) == []
    assert archived(direct) == (None, 0)
    proxy.rate = None
    # The killed run's lock names a dead process on this host: taken over at once.
    assert_complete_night(rgw, bucket, cli("backup"))


def test_two_runs_at_once_one_writes_and_the_other_is_told_who(
    rgw: Rgw, bucket: str, pool: Pool, proxy: FaultyProxy, tmp_path: Path
) -> None:
    proxy.rate = 1_500_000
    clis = [
        cli_for(rgw, bucket, pool, proxy.url, tmp_path / name).with_env(
            ZFS_OFFSITE_LOCK__WAIT_SECONDS="0"
        )
        for name in ("a", "b")
    ]
    # The archive exists (as after a first night): the race is for the member's lock.
    # Two first nights at once also race for the archive's marker: see the test below.
    assert clis[0]("init").code == 0
    results: list[Result] = []
    nights = [_background(cli, results) for cli in clis]
    for night in nights:
        night.join(400)
    codes = sorted(r.code for r in results)
    assert codes == [0, 1], [r.output[-2000:] for r in results]
    refused = next(r for r in results if r.code == 1)
    line = member_error(refused)
    assert line.startswith(f"member {MEMBER}: backup run "), line
    assert " (pid " in line and " is writing to it " in line and "lock.stale_seconds" in line
    proxy.rate = None
    done = next(r for r in results if r.code == 0)
    assert_complete_night(rgw, bucket, done)


def test_the_endpoint_down_is_retried_then_one_line_and_the_next_night_completes(
    rgw: Rgw, bucket: str, pool: Pool, proxy: FaultyProxy, tmp_path: Path
) -> None:
    cli = cli_for(rgw, bucket, pool, proxy.url, tmp_path).with_env(
        ZFS_OFFSITE_RETRIES="2", ZFS_OFFSITE_RETRY_DELAY="3"
    )
    direct = cli.with_env(ZFS_OFFSITE_TARGET__S3__ENDPOINT_URL=rgw.endpoint)
    assert archived(direct) == (None, 0)
    proxy.down()
    started = time.monotonic()
    done = cli("backup")
    took = time.monotonic() - started
    assert done.code == 1, done.output[-3000:]
    line = member_error(done)
    assert f"cannot reach the S3 endpoint {proxy.url}" in line
    assert "is the store up? check target.s3.endpoint_url" in line
    assert took >= 3 + 6, f"{took:.1f} s: the two retries (3 s, then 6 s) did not wait"
    assert streams(rgw, bucket) == [] and archived(direct) == (None, 0)
    proxy.up()
    assert_complete_night(rgw, bucket, cli("backup"))


def test_a_completion_overtaken_by_another_writer_is_not_called_corrupt(
    rgw: Rgw, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs write the same small file (the marker) at once; B completes its upload
    right after A's completion, before A's HEAD: the interleaving seen through the CLI."""
    for name, value in (("AWS_ACCESS_KEY_ID", rgw.access_key),
                        ("AWS_SECRET_ACCESS_KEY", rgw.secret_key)):  # fmt: skip
        monkeypatch.setenv(name, value)
    a, b = (S3Store(bucket, PREFIX, endpoint_url=rgw.endpoint, region=rgw.region) for _ in "ab")
    partial_a = write_new_file(a, MARKER_NAME, b'{"archive_id": "a"}\n')
    partial_b = write_new_file(b, MARKER_NAME, b'{"archive_id": "b"}\n')
    head = a._client.head_object

    def b_completes_first(**kwargs: Any) -> Any:
        monkeypatch.setattr(a._client, "head_object", head)  # once
        b.rename(partial_b, MARKER_NAME)
        return head(**kwargs)

    monkeypatch.setattr(a._client, "head_object", b_completes_first)
    try:
        a.rename(partial_a, MARKER_NAME)
        with a.open_read(MARKER_NAME) as marker:
            stored = marker.read()
    except IntegrityError as error:
        pytest.fail(f"called corrupt: {error}")
    finally:
        a.close()
        b.close()
    assert stored == b'{"archive_id": "b"}\n'  # the later completion stands, whole


@pytest.mark.parametrize("fault", ["wrong secret key", "missing bucket"])
def test_a_permanent_refusal_is_one_line_and_not_retried(
    rgw: Rgw, bucket: str, pool: Pool, proxy: FaultyProxy, tmp_path: Path, fault: str
) -> None:
    cli = cli_for(rgw, bucket, pool, proxy.url, tmp_path).with_env(
        ZFS_OFFSITE_RETRIES="3", ZFS_OFFSITE_RETRY_DELAY="0.2"
    )
    if fault == "wrong secret key":
        wrong = cli.with_env(AWS_SECRET_ACCESS_KEY="0" * 40)
        expected = "(SignatureDoesNotMatch): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    else:
        wrong = cli.with_env(ZFS_OFFSITE_TARGET__URL=f"s3://{bucket}-none/{PREFIX}")
        expected = f"the bucket '{bucket}-none' does not exist at {proxy.url}: create it"
    done = wrong("backup")
    assert done.code == 1, done.output[-3000:]
    assert expected in member_error(done)
    # Each attempt starts with a HEAD of the archive's marker: one attempt only.
    asked = [
        r
        for r in proxy.requests
        if r.startswith(f"HEAD /{wrong_bucket(wrong)}/{PREFIX}/.zfs-offsite-archive.json ")
    ]
    assert len(asked) == 1, proxy.requests
    assert objects(rgw, bucket) == {} and uploads(rgw, bucket) == []
    assert_complete_night(rgw, bucket, cli("backup"))


# ---------------------------------------------------------------------------- helpers


def wrong_bucket(cli: Cli) -> str:
    return cli.env["ZFS_OFFSITE_TARGET__URL"].removeprefix("s3://").split("/", 1)[0]


def _background(cli: Cli, into: list[Result]) -> _Night:
    night = _Night(cli, into)
    night.start()
    return night


class _Night:
    """`zfs-offsite backup` in a thread; its Result appended to `into`."""

    def __init__(self, cli: Cli, into: list[Result]) -> None:
        self._thread = threading.Thread(target=lambda: into.append(cli("backup")), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the backup did not end"

    def alive(self) -> bool:
        return self._thread.is_alive()


def _wait_for(ready: object, night: _Night, what: str) -> None:
    deadline = time.monotonic() + 240
    while not ready():  # type: ignore[operator]
        assert night.alive(), "the backup ended first"
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
