"""Nightly backups to an s3:// target through the CLI, with the file targets' guarantees.

A real pool (zfs-fuse) backed up to the real RGW: a full, then an incremental;
every stored object matches its `.sha256`; a bucket quota is one line and
leaves nothing complete; prune applies the retention policy in the bucket; an
archive moves between a file target and the bucket with `rclone copy` and is
extended on both.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import Cli, file_archive_cli
from tests.support.rgw import Rgw
from tests.support.services import Pool, create_pool, run
from tests.support.zfsdata import SNAP
from zfs_offsite.archive.lock import LOCK_NAME

PREFIX = "lab/zfs"
MEMBER = "alice"
DATASET_DIR = f"elabfs-{MEMBER}"


@pytest.fixture(scope="module")
def pool(zfs_fuse: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    """One member, `elabfs-alice`, with the snapshot SNAP.

    The member is never mounted (`canmount=off`): FUSE mounts of a busy zfs-fuse
    can hang, and the backups read snapshots only. Its streams are small."""
    pool = create_pool(tmp_path_factory.mktemp("w1-pool"), prefix="w1")
    run(["zfs", "create", "-o", "canmount=off", member(pool)])
    run(["zfs", "snapshot", f"{member(pool)}@{SNAP}"])
    yield pool
    pool.destroy()


def member(pool: Pool) -> str:
    return f"{pool.name}/{DATASET_DIR}"


def new_night(pool: Pool, seed: int, name: str) -> None:
    """The member's next snapshot, `name` (`seed`: kept for a data-carrying variant)."""
    del seed
    run(["zfs", "snapshot", f"{member(pool)}@{name}"])


@pytest.fixture
def s3_cli(rgw: Rgw, bucket: str, pool: Pool, tmp_path: Path) -> Cli:
    cli = file_archive_cli(tmp_path, pool.name)
    aws = {k: v for k, v in rgw.environment().items() if k.startswith("AWS_") and "URL" not in k}
    return cli.with_env(
        ZFS_OFFSITE_TARGET__URL=f"s3://{bucket}/{PREFIX}",
        ZFS_OFFSITE_TARGET__S3__ENDPOINT_URL=rgw.endpoint,
        ZFS_OFFSITE_RETRIES="0",
        **aws,
    )


def objects(rgw: Rgw, bucket: str) -> dict[str, bytes]:
    s3 = rgw.client()
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=PREFIX + "/").get("Contents", [])
    return {
        o["Key"][len(PREFIX) + 1 :]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        for o in listed
    }


def uploads(rgw: Rgw, bucket: str) -> list[str]:
    return [u["Key"] for u in rgw.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def backups(stored: dict[str, bytes]) -> list[str]:
    return sorted(k for k in stored if k.endswith(".zst"))


def assert_every_backup_matches_its_checksum(stored: dict[str, bytes]) -> None:
    for key in backups(stored):
        recorded = stored[key + ".sha256"].decode().split()[0]
        assert hashlib.sha256(stored[key]).hexdigest() == recorded, key
        assert key + ".json" in stored


def test_two_nights_full_then_incremental(rgw: Rgw, bucket: str, s3_cli: Cli, pool: Pool) -> None:
    before = s3_cli("plan")  # a new prefix: a bucket has no disk to mount
    assert before.code == 0, before.output
    assert "is missing: are the bucket and prefix right?" in before.stderr, before.output
    assert "disk" not in before.stderr
    first = s3_cli("backup")
    assert first.code == 0, first.output
    new_night(pool, 11, "auto-20190808.0200-1w")
    second = s3_cli("backup")
    assert second.code == 0, second.output

    stored = objects(rgw, bucket)
    assert ".zfs-offsite-archive.json" in stored  # the identity marker of a new archive
    names = backups(stored)
    assert len(names) == 2 and sum(".to." in n for n in names) == 1, names
    assert all(n.startswith(f"{MEMBER}/") for n in names)
    assert_every_backup_matches_its_checksum(stored)
    assert not [k for k in stored if k.endswith(".partial")] and uploads(rgw, bucket) == []

    status = json.loads(s3_cli("status", "--json").stdout)
    assert [(m["member"], m["chain_length"]) for m in status["members"]] == [(MEMBER, 2)]


def test_a_bucket_quota_is_one_line_and_leaves_nothing_complete(
    rgw: Rgw, bucket: str, s3_cli: Cli
) -> None:
    assert s3_cli("init").code == 0
    rgw.admin("quota", "set", "--quota-scope=bucket", f"--bucket={bucket}", "--max-size=1")
    rgw.admin("quota", "enable", "--quota-scope=bucket", f"--bucket={bucket}")
    done = s3_cli("backup")
    assert done.code == 1, done.output
    assert "Traceback" not in done.output
    lines = [line for line in done.output.splitlines() if "over its quota" in line]
    assert lines, done.output
    assert "QuotaExceeded" in lines[0] and "radosgw-admin quota set" in lines[0]
    stored = objects(rgw, bucket)
    assert backups(stored) == [] and uploads(rgw, bucket) == []
    assert not [k for k in stored if "/" in k and not k.endswith(".lock")], stored


def test_prune_applies_the_retention_policy_in_the_bucket(
    rgw: Rgw, bucket: str, s3_cli: Cli, pool: Pool
) -> None:
    assert s3_cli("backup").code == 0
    new_night(pool, 21, "auto-20190809.0200-1w")
    forced = s3_cli("backup", "--force-full")
    assert forced.code == 0, forced.output
    before = backups(objects(rgw, bucket))
    assert len(before) == 2 and not any(".to." in n for n in before), before

    done = s3_cli("prune", ZFS_OFFSITE_RETENTION__POLICY="daily 7d")
    assert done.code == 0, done.output
    stored = objects(rgw, bucket)
    kept = max(before)  # the newer full: one point a day is kept
    assert backups(stored) == [kept]
    # The member's lock object stays (released, never deleted: remote/s3_lock.py).
    lock = f"{MEMBER}/{LOCK_NAME}"
    assert sorted(k for k in stored if k.startswith(f"{MEMBER}/") and k != lock) == sorted(
        [kept, kept + ".json", kept + ".sha256"]
    )


def test_an_archive_moves_between_a_file_target_and_the_bucket_with_rclone(
    rgw: Rgw, bucket: str, s3_cli: Cli, pool: Pool, tmp_path: Path
) -> None:
    file_cli = s3_cli.with_env(ZFS_OFFSITE_TARGET__URL=f"file://{tmp_path / 'archive'}")
    assert file_cli("backup").code == 0
    rclone(rgw, str(tmp_path / "archive"), f"rgw:{bucket}/{PREFIX}")
    new_night(pool, 31, "auto-20190810.0200-1w")
    on_s3 = s3_cli("backup")
    assert on_s3.code == 0, on_s3.output
    stored = objects(rgw, bucket)
    assert len(backups(stored)) == 2
    assert_every_backup_matches_its_checksum(stored)

    back = tmp_path / "back"
    rclone(rgw, f"rgw:{bucket}/{PREFIX}", str(back))
    new_night(pool, 41, "auto-20190811.0200-1w")
    on_file = s3_cli("backup", ZFS_OFFSITE_TARGET__URL=f"file://{back}")
    assert on_file.code == 0, on_file.output
    files = sorted(p.name for p in (back / MEMBER).iterdir() if p.name.endswith(".zst"))
    assert len(files) == 3


def rclone(rgw: Rgw, source: str, destination: str) -> None:
    """`rclone copy` with its S3 remote `rgw:` in the environment, as an admin runs it."""
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"} | {
        "RCLONE_CONFIG_RGW_TYPE": "s3",
        "RCLONE_CONFIG_RGW_PROVIDER": "Ceph",
        "RCLONE_CONFIG_RGW_ENDPOINT": rgw.endpoint,
        "RCLONE_CONFIG_RGW_ACCESS_KEY_ID": rgw.access_key,
        "RCLONE_CONFIG_RGW_SECRET_ACCESS_KEY": rgw.secret_key,
        "RCLONE_CONFIG_RGW_REGION": rgw.region,
        "RCLONE_CONFIG_RGW_FORCE_PATH_STYLE": "true",
    }
    done = subprocess.run(
        ["rclone", "copy", source, destination],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
