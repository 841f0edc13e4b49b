"""A cut upload to a bucket continues its multipart upload in the next process (real RGW).

One member holds DATA_MIB of random data (incompressible: the stored object is
about as big as the stream), written once for the module (zfs-fuse dislikes
many pools). A backup process is SIGKILLed once its checkpoint object records
two checkpoints (128 MiB, parts 1-4 of 32 MiB); the next run, in this process,
is counted on the wire (every UploadPart call of its S3 client). The result is
checked as a user would: the object's sha256 against its `.sha256`, and
`zstd -d | zfs receive` with the snapshot's GUID compared.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.faults import python_env
from tests.support.rgw import Rgw
from tests.support.services import Pool, create_pool
from tests.support.zfsdata import (
    SNAP,
    destroy_dataset,
    guid,
    random_member,
)
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.plan.backup import Action
from zfs_offsite.remote import s3
from zfs_offsite.remote.s3_credentials import S3Keys
from zfs_offsite.settings import Settings, load_settings

pytestmark = pytest.mark.usefixtures("aws_env")

MiB = 1 << 20
PART = 32 * MiB
DATA_MIB = 176  # 5 full parts and a short one; checkpoints at 64 and 128 MiB
PREFIX = "lab/zfs"
FILE = f"elabfs-erin@{SNAP}.zst"
KEY = f"{PREFIX}/erin/{FILE}"


@pytest.fixture(scope="module")
def big_pool(zfs_fuse: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    """A sparse 1 GiB pool whose member holds DATA_MIB of random data, snapshotted."""
    pool = create_pool(tmp_path_factory.mktemp("w8-resume"), prefix="w8", size_mb=1024)
    random_member(pool.name, pool.mountpoint, "erin", DATA_MIB)
    yield pool
    pool.destroy()


def settings(pool: Pool, rgw: Rgw, bucket: str, level: int = 3) -> Settings:
    return load_settings(
        source={"pool": pool.name},
        target={
            "url": f"s3://{bucket}/{PREFIX}",
            "s3": {"endpoint_url": rgw.endpoint, "region": rgw.region},
        },
        compression={"algorithm": "zstd", "level": level},
    )


def killed_after_two_checkpoints(pool: Pool, rgw: Rgw, bucket: str) -> str:
    """A backup process SIGKILLed once its checkpoint object holds two checkpoints; the
    UploadId of the multipart upload it leaves."""
    return killed_after_checkpoints(pool, rgw, bucket, 2)


def killed_after_checkpoints(
    pool: Pool, rgw: Rgw, bucket: str, count: int, **settings_env: str
) -> str:
    """A backup process (with `settings_env` besides the bucket's) SIGKILLed once its
    checkpoint object holds `count` checkpoints; the UploadId of the upload it leaves."""
    env = python_env(
        {
            "ZFS_OFFSITE_SOURCE__POOL": pool.name,
            "ZFS_OFFSITE_TARGET__URL": f"s3://{bucket}/{PREFIX}",
            "ZFS_OFFSITE_TARGET__S3__ENDPOINT_URL": rgw.endpoint,
            "ZFS_OFFSITE_TARGET__S3__REGION": rgw.region,
            "AWS_ACCESS_KEY_ID": rgw.access_key,
            "AWS_SECRET_ACCESS_KEY": rgw.secret_key,
        }
        | settings_env
    )
    first = subprocess.Popen([sys.executable, "-m", "tests.support.backup_once"], env=env)
    deadline = time.monotonic() + 300
    try:
        while checkpoints_recorded(rgw, bucket) < count:
            assert time.monotonic() < deadline and first.poll() is None, "no checkpoints"
            time.sleep(0.1)
    finally:
        first.kill()
        first.wait()
    (upload,) = uploads(rgw, bucket)
    return upload


def checkpoints_recorded(rgw: Rgw, bucket: str) -> int:
    """Checkpoint lines (the header not counted) in the member's checkpoint object."""
    client = rgw.client()
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/erin/").get("Contents", [])
    found = [o["Key"] for o in listed if o["Key"].endswith(".ckpt.partial")]
    if not found:
        return 0
    body = client.get_object(Bucket=bucket, Key=found[0])["Body"].read()
    return max(0, body.count(b"\n") - 1)


def uploads(rgw: Rgw, bucket: str) -> list[str]:
    """UploadIds of the multipart uploads of the stream's key still in progress."""
    found = rgw.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return [u["UploadId"] for u in found if u["Key"] == KEY]


def keys(rgw: Rgw, bucket: str) -> list[str]:
    listed = rgw.client().list_objects_v2(Bucket=bucket, Prefix=PREFIX + "/").get("Contents", [])
    return sorted(o["Key"][len(PREFIX) + 1 :] for o in listed)


@pytest.fixture
def parts_sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(part number, bytes) of every UploadPart call of the store's S3 clients from now on."""
    sent: list[tuple[int, int]] = []
    real = s3._session

    def counting(profile: str | None, keys: S3Keys | None = None):  # type: ignore[no-untyped-def]
        session = real(profile, keys)

        def count(params: dict[str, object], **_: object) -> None:
            body = params["Body"]
            # the part itself (a bytearray since s3_upload sends its buffer): len() is its size
            assert isinstance(body, bytes | bytearray)
            sent.append((int(str(params["PartNumber"])), len(body)))

        session.events.register("provide-client-params.s3.UploadPart", count)
        return session

    monkeypatch.setattr(s3, "_session", counting)
    return sent


def check_the_object(rgw: Rgw, bucket: str, pool: Pool, tmp_path: Path) -> int:
    """The stored object as a user checks it: sha256 against its sidecar, then
    `zstd -d | zfs receive`; its size."""
    client = rgw.client()
    stored = tmp_path / FILE
    client.download_file(bucket, KEY, str(stored))
    sidecar = client.get_object(Bucket=bucket, Key=KEY + ".sha256")["Body"].read().decode()
    digest = hashlib.sha256()
    with stored.open("rb") as handle:
        while block := handle.read(8 * MiB):
            digest.update(block)
    assert sidecar.split()[0] == digest.hexdigest()
    target = f"{pool.name}/w8-received"
    try:
        with stored.open("rb") as handle:
            unpack = subprocess.Popen(
                ["zstd", "-d", "-c", "-q"], stdin=handle, stdout=subprocess.PIPE
            )
            received = subprocess.run(
                ["zfs", "receive", "-u", target],
                stdin=unpack.stdout,
                capture_output=True,
                text=True,
            )
            assert unpack.stdout is not None
            unpack.stdout.close()
            assert unpack.wait() == 0 and received.returncode == 0, received.stderr
        assert guid(f"{target}@{SNAP}") == guid(f"{pool.name}/elabfs-erin@{SNAP}")
    finally:
        destroy_dataset(target)
    size = stored.stat().st_size
    stored.unlink()
    return size


def test_a_killed_upload_continues_in_a_new_process_without_its_parts_sent_again(
    big_pool: Pool,
    rgw: Rgw,
    bucket: str,
    parts_sent: list[tuple[int, int]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    killed = killed_after_two_checkpoints(big_pool, rgw, bucket)
    config = settings(big_pool, rgw, bucket)
    (member,) = discover_members(config)
    with caplog.at_level(logging.INFO, logger="zfs_offsite"):
        result = backup_member(config, member)
    assert result.action is Action.FULL and result.stream is not None
    size = check_the_object(rgw, bucket, big_pool, tmp_path)
    stream_parts = [(n, b) for n, b in parts_sent if b >= 1 * MiB or n > 1]  # not the sidecars
    again = sum(b for _, b in stream_parts)
    print(f"object {size} bytes; sent again {again} ({again / size:.1%}); parts {stream_parts}")
    assert min(n for n, _ in stream_parts) == 5  # parts 1-4 (two checkpoints) kept
    assert again < 0.30 * size
    assert result.stream.resumed_bytes == 4 * PART
    assert "match the regenerated stream; sending from there" in caplog.text
    assert uploads(rgw, bucket) == [] and killed  # the killed run's upload was completed
    assert not [k for k in keys(rgw, bucket) if k.endswith(".partial")]  # no checkpoints left
    assert FILE + ".sha256" in [k.split("/")[-1] for k in keys(rgw, bucket)]


@pytest.mark.parametrize(("altered", "kept_parts"), [(3, 2), (1, 0)])
def test_a_part_altered_on_the_store_is_found_by_its_md5_and_sent_again(
    big_pool: Pool,
    rgw: Rgw,
    bucket: str,
    parts_sent: list[tuple[int, int]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    altered: int,
    kept_parts: int,
) -> None:
    """Another writer (or the store) replaced stored part `altered` with other bytes of the
    same size: parts from the checkpoint chunk before it on are sent again; a first part
    that differs starts a fresh upload and the old one is aborted."""
    killed = killed_after_two_checkpoints(big_pool, rgw, bucket)
    rgw.client().upload_part(
        Bucket=bucket, Key=KEY, UploadId=killed, PartNumber=altered, Body=os.urandom(PART)
    )
    config = settings(big_pool, rgw, bucket)
    (member,) = discover_members(config)
    with caplog.at_level(logging.INFO, logger="zfs_offsite"):
        result = backup_member(config, member)
    assert result.action is Action.FULL and result.stream is not None
    check_the_object(rgw, bucket, big_pool, tmp_path)
    assert f"part {altered}'s stored MD5" in caplog.text
    stream_parts = [n for n, b in parts_sent if b >= 1 * MiB or n > 1]
    assert min(stream_parts) == kept_parts + 1
    assert result.stream.resumed_bytes == kept_parts * PART
    assert uploads(rgw, bucket) == []
    if kept_parts == 0:
        assert "uploading afresh" in caplog.text


def test_a_stream_that_is_not_the_same_starts_afresh_and_aborts_the_old_upload(
    big_pool: Pool,
    rgw: Rgw,
    bucket: str,
    parts_sent: list[tuple[int, int]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    killed = killed_after_two_checkpoints(big_pool, rgw, bucket)
    config = settings(big_pool, rgw, bucket, level=5)  # the compression changed between runs
    (member,) = discover_members(config)
    with caplog.at_level(logging.INFO, logger="zfs_offsite"):
        result = backup_member(config, member)
    assert result.action is Action.FULL and result.stream is not None
    check_the_object(rgw, bucket, big_pool, tmp_path)
    assert "not resumed: the stream is not the same (compression level 3 -> 5)" in caplog.text
    assert result.stream.resumed_bytes == 0
    assert min(n for n, b in parts_sent if b >= 1 * MiB) == 1
    with pytest.raises(rgw.client().exceptions.ClientError):  # the killed run's upload: gone
        rgw.client().list_parts(Bucket=bucket, Key=KEY, UploadId=killed)
    assert uploads(rgw, bucket) == []
    assert not [k for k in keys(rgw, bucket) if k.endswith(".partial")]
