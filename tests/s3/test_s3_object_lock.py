"""S3 Object Lock and storage class through the CLI, on the real RGW and a real pool.

A backup to a bucket created with object lock gives every new backup file and
its sidecars a retention the store enforces (a DELETE of the version is
refused); prune keeps such a file and says until when, and deletes it, every
version, once the retention has passed; a storage class reaches the data
objects; retention asked for on a bucket without object lock is one line
before anything is written.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.support.cli import Cli, file_archive_cli
from tests.support.rgw import Rgw
from tests.support.services import Pool, create_pool, run
from tests.support.zfsdata import SNAP

PREFIX = "lab/zfs"
MEMBER = "alice"
DATASET_DIR = f"elabfs-{MEMBER}"


@pytest.fixture(scope="module")
def pool(zfs_fuse: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    """One never-mounted member, `elabfs-alice`, with the snapshot SNAP (small streams)."""
    pool = create_pool(tmp_path_factory.mktemp("w9-pool"), prefix="w9")
    run(["zfs", "create", "-o", "canmount=off", f"{pool.name}/{DATASET_DIR}"])
    run(["zfs", "snapshot", f"{pool.name}/{DATASET_DIR}@{SNAP}"])
    yield pool
    pool.destroy()


@pytest.fixture
def locked_bucket(rgw: Rgw) -> Iterator[str]:
    """A bucket created with object lock (so versioned); its versions removed at the end
    with the governance bypass the backup host never uses."""
    name = f"t-lock-{secrets.token_hex(5)}"
    s3 = rgw.client()
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    yield name
    listed = s3.list_object_versions(Bucket=name)
    for item in [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]:
        s3.delete_object(
            Bucket=name,
            Key=item["Key"],
            VersionId=item["VersionId"],
            BypassGovernanceRetention=True,
        )


def cli_for(rgw: Rgw, bucket: str, pool: Pool, tmp_path: Path, **env: str) -> Cli:
    """The CLI on `bucket`. A versioned bucket (object lock makes one) needs
    `single_writer`: RGW 16 ignores `If-None-Match: *` there (test_rgw_facts.py), so
    the lock's probe refuses conditional locking."""
    cli = file_archive_cli(tmp_path, pool.name)
    aws = {k: v for k, v in rgw.environment().items() if k.startswith("AWS_") and "URL" not in k}
    return cli.with_env(
        ZFS_OFFSITE_TARGET__URL=f"s3://{bucket}/{PREFIX}",
        ZFS_OFFSITE_TARGET__S3__ENDPOINT_URL=rgw.endpoint,
        ZFS_OFFSITE_RETRIES="0",
        **aws,
        **env,
    )


def member_keys(rgw: Rgw, bucket: str) -> list[str]:
    """The member's backup files and sidecars (not its writer lock)."""
    listed = rgw.client().list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/{MEMBER}/")
    keys = (o["Key"] for o in listed.get("Contents", []))
    return sorted(k for k in keys if not k.rsplit("/", 1)[-1].startswith(".zfs-offsite"))


def backup_keys(rgw: Rgw, bucket: str) -> list[str]:
    return [k for k in member_keys(rgw, bucket) if k.endswith(".zst")]


def versions(rgw: Rgw, bucket: str, key: str) -> list[Mapping[str, object]]:
    """Every version and delete marker of exactly `key`."""
    listed = rgw.client().list_object_versions(Bucket=bucket, Prefix=key)
    return [
        item
        for item in [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]
        if item["Key"] == key
    ]


def test_new_backup_files_get_a_retention_the_store_enforces(
    rgw: Rgw, locked_bucket: str, pool: Pool, tmp_path: Path
) -> None:
    cli = cli_for(
        rgw,
        locked_bucket,
        pool,
        tmp_path,
        ZFS_OFFSITE_TARGET__S3__OBJECT_LOCK_DAYS="1",
        ZFS_OFFSITE_TARGET__S3__SINGLE_WRITER="true",
    )
    started = datetime.now(UTC)
    done = cli("backup")
    assert done.code == 0, done.output
    s3 = rgw.client()
    keys = member_keys(rgw, locked_bucket)
    (data,) = backup_keys(rgw, locked_bucket)
    assert sorted(keys) == sorted([data, data + ".json", data + ".sha256"])
    for key in keys:  # the data object and both sidecars
        retention = s3.get_object_retention(Bucket=locked_bucket, Key=key)["Retention"]
        assert retention["Mode"] == "GOVERNANCE", key
        until = retention["RetainUntilDate"]
        assert started + timedelta(days=1) - timedelta(seconds=5) <= until, key
        assert until <= datetime.now(UTC) + timedelta(days=1, seconds=5), key
    # The protection is the store's: deleting the version is refused, even to this key.
    version = s3.head_object(Bucket=locked_bucket, Key=data)["VersionId"]
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=locked_bucket, Key=data, VersionId=version)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert versions(rgw, locked_bucket, data)[0]["VersionId"] == version


def test_prune_keeps_a_retained_file_says_why_and_deletes_it_after(
    rgw: Rgw, locked_bucket: str, pool: Pool, tmp_path: Path
) -> None:
    cli = cli_for(
        rgw,
        locked_bucket,
        pool,
        tmp_path,
        ZFS_OFFSITE_TARGET__S3__OBJECT_LOCK_DAYS="1",
        ZFS_OFFSITE_TARGET__S3__SINGLE_WRITER="true",
    )
    assert cli("backup").code == 0
    run(["zfs", "snapshot", f"{pool.name}/{DATASET_DIR}@auto-20190809.0200-1w"])
    forced = cli("backup", "--force-full")
    assert forced.code == 0, forced.output
    before = backup_keys(rgw, locked_bucket)
    assert len(before) == 2, before
    older = min(before)  # the policy keeps one point a day: the newer full

    kept = cli("prune", ZFS_OFFSITE_RETENTION__POLICY="daily 7d")
    assert kept.code == 0, kept.output
    assert backup_keys(rgw, locked_bucket) == before
    lines = [line for line in kept.output.splitlines() if older.rsplit("/", 1)[-1] in line]
    assert any("keep" in line and "object lock until" in line for line in lines), kept.output
    assert all(len(versions(rgw, locked_bucket, k)) == 1 for k in member_keys(rgw, locked_bucket))

    # The retention ends (an admin with the governance bypass shortens it to seconds).
    s3 = rgw.client()
    soon = datetime.now(UTC) + timedelta(seconds=3)
    for key in (older, older + ".json", older + ".sha256"):
        s3.put_object_retention(
            Bucket=locked_bucket,
            Key=key,
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": soon},
            BypassGovernanceRetention=True,
        )
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 1.5)

    pruned = cli("prune", ZFS_OFFSITE_RETENTION__POLICY="daily 7d")
    assert pruned.code == 0, pruned.output
    assert backup_keys(rgw, locked_bucket) == [max(before)]
    # Gone for good: no version and no delete marker left holding (and billing) its bytes.
    for key in (older, older + ".json", older + ".sha256"):
        assert versions(rgw, locked_bucket, key) == [], key


def test_a_delete_marked_backup_is_not_counted_and_prune_does_not_fail_on_a_lock(
    rgw: Rgw, locked_bucket: str, pool: Pool, tmp_path: Path
) -> None:
    """A bucket whose own default retention locks every object, with no object_lock_days:
    prune still keeps, and says why; status counts only current versions."""
    s3 = rgw.client()
    s3.put_object_lock_configuration(
        Bucket=locked_bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
        },
    )
    cli = cli_for(rgw, locked_bucket, pool, tmp_path, ZFS_OFFSITE_TARGET__S3__SINGLE_WRITER="true")
    assert cli("backup").code == 0
    run(["zfs", "snapshot", f"{pool.name}/{DATASET_DIR}@auto-20190810.0200-1w"])
    assert cli("backup", "--force-full").code == 0
    before = backup_keys(rgw, locked_bucket)
    pruned = cli("prune", ZFS_OFFSITE_RETENTION__POLICY="daily 7d")
    assert pruned.code == 0, pruned.output
    assert "object lock until" in pruned.output
    assert backup_keys(rgw, locked_bucket) == before

    # A plain DELETE (what a compromised host can do) only adds a delete marker: the
    # backup no longer counts, though its locked version is still in the bucket.
    newest = max(before)
    s3.delete_object(Bucket=locked_bucket, Key=newest)
    status = cli("status", "--json")
    assert status.code in (0, 1), status.output
    assert newest.rsplit("/", 1)[-1] not in status.stdout
    assert any(v.get("IsLatest") is False for v in versions(rgw, locked_bucket, newest))


def test_retention_on_a_bucket_without_object_lock_is_one_line_before_any_write(
    rgw: Rgw, bucket: str, pool: Pool, tmp_path: Path
) -> None:
    cli = cli_for(rgw, bucket, pool, tmp_path, ZFS_OFFSITE_TARGET__S3__OBJECT_LOCK_DAYS="30")
    done = cli("backup")
    assert done.code != 0 and "Traceback" not in done.output
    lines = [line for line in done.output.splitlines() if "object_lock_days" in line]
    assert len(lines) >= 1, done.output
    assert "has no Object Lock" in lines[0] and "create a bucket with object lock" in lines[0]
    assert rgw.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_the_storage_class_reaches_the_store(
    rgw: Rgw, bucket: str, pool: Pool, tmp_path: Path
) -> None:
    """RGW 16 offers STANDARD only (unless its admin placed more) and refuses S3's other
    classes at the upload's start; the HEAD of a multipart object shows no class
    (test_rgw_facts.py). So the class is seen arriving by the store's refusal."""
    cli = cli_for(rgw, bucket, pool, tmp_path, ZFS_OFFSITE_TARGET__S3__STORAGE_CLASS="STANDARD_IA")
    done = cli("backup")
    assert done.code == 1 and "Traceback" not in done.output, done.output
    lines = [line for line in done.output.splitlines() if "storage class" in line]
    assert lines and "'STANDARD_IA'" in lines[0] and "target.s3.storage_class" in lines[0]
    assert backup_keys(rgw, bucket) == []
    assert rgw.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    ok = cli("backup", ZFS_OFFSITE_TARGET__S3__STORAGE_CLASS="STANDARD")
    assert ok.code == 0, ok.output
    assert len(backup_keys(rgw, bucket)) == 1


def test_a_storage_class_s3_does_not_know_is_refused_at_load(
    rgw: Rgw, bucket: str, pool: Pool, tmp_path: Path
) -> None:
    cli = cli_for(rgw, bucket, pool, tmp_path, ZFS_OFFSITE_TARGET__S3__STORAGE_CLASS="COLDISH")
    done = cli("backup")
    assert done.code == 2, done.output
    assert "storage_class" in done.output and "STANDARD_IA" in done.output
    assert rgw.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
