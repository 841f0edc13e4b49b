"""What Object Lock, versioning and storage classes do on the real store (Ceph RGW 16).

remote/s3_retention.py and docs/how-to/object-storage.md ("Object Lock") build on
each of these; a store (or a Ceph upgrade) that behaves otherwise fails here
first, naming the fact.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from tests.s3.test_rgw_facts import error_of
from tests.support.rgw import Rgw


@pytest.fixture
def locked(rgw: Rgw) -> Iterator[str]:
    """A bucket created with object lock; emptied with the governance bypass at the end."""
    name = f"t-lockf-{secrets.token_hex(5)}"
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


def multipart(rgw: Rgw, bucket: str, key: str, **start: object) -> str:
    """A one-part multipart object; its VersionId ("" on a bucket without versioning)."""
    s3 = rgw.client()
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key, **start)["UploadId"]  # type: ignore[arg-type]
    etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"x")["ETag"]
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )
    return done.get("VersionId", "")


def test_object_lock_is_probed_by_its_configuration_and_brings_versioning(
    rgw: Rgw, locked: str, bucket: str
) -> None:
    s3 = rgw.client()
    config = s3.get_object_lock_configuration(Bucket=locked)["ObjectLockConfiguration"]
    assert config == {"ObjectLockEnabled": "Enabled"}  # no default retention unless set
    assert s3.get_bucket_versioning(Bucket=locked)["Status"] == "Enabled"
    with pytest.raises(ClientError) as plain:
        s3.get_object_lock_configuration(Bucket=bucket)
    assert error_of(plain) == (404, "ObjectLockConfigurationNotFoundError")


def test_retention_given_at_the_upload_start_is_dropped_but_can_be_set_after(
    rgw: Rgw, locked: str
) -> None:
    """So the writer sets it with PutObjectRetention on the completed version."""
    s3 = rgw.client()
    until = (datetime.now(UTC) + timedelta(minutes=10)).replace(microsecond=0)
    version = multipart(
        rgw, locked, "k", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until
    )
    with pytest.raises(ClientError) as none:
        s3.get_object_retention(Bucket=locked, Key="k", VersionId=version)
    assert error_of(none) == (404, "ObjectLockConfigurationNotFoundError")
    s3.put_object_retention(
        Bucket=locked,
        Key="k",
        VersionId=version,
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until},
    )
    held = s3.get_object_retention(Bucket=locked, Key="k", VersionId=version)["Retention"]
    assert held["Mode"] == "GOVERNANCE" and held["RetainUntilDate"] == until
    # The lock is real: the version cannot be deleted, nor its retention shortened.
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=locked, Key="k", VersionId=version)
    assert error_of(refused) == (403, "AccessDenied")
    with pytest.raises(ClientError) as shorter:
        s3.put_object_retention(
            Bucket=locked,
            Key="k",
            VersionId=version,
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until - timedelta(minutes=5)},
        )
    assert error_of(shorter) == (403, "AccessDenied")
    # A plain DELETE only adds a delete marker: the key leaves the listing, the bytes stay.
    assert s3.delete_object(Bucket=locked, Key="k")["DeleteMarker"] is True
    assert "Contents" not in s3.list_objects_v2(Bucket=locked)
    kept = s3.list_object_versions(Bucket=locked)["Versions"]
    assert [(v["VersionId"], v["IsLatest"]) for v in kept] == [(version, False)]


def test_a_default_retention_reaches_multipart_objects(rgw: Rgw, locked: str) -> None:
    s3 = rgw.client()
    s3.put_object_lock_configuration(
        Bucket=locked,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
        },
    )
    version = multipart(rgw, locked, "d")
    held = s3.get_object_retention(Bucket=locked, Key="d", VersionId=version)["Retention"]
    assert held["RetainUntilDate"] > datetime.now(UTC) + timedelta(hours=23)


def test_a_retain_until_date_in_the_past_is_refused(rgw: Rgw, locked: str) -> None:
    with pytest.raises(ClientError) as past:
        rgw.client().put_object(
            Bucket=locked,
            Key="p",
            Body=b"x",
            ObjectLockMode="GOVERNANCE",
            ObjectLockRetainUntilDate=datetime.now(UTC) - timedelta(minutes=1),
        )
    assert error_of(past) == (400, "InvalidArgument")


def test_a_versioned_bucket_ignores_create_only_puts(rgw: Rgw, locked: str) -> None:
    """So the writer lock's probe refuses conditional locking there: target.s3.single_writer."""
    s3 = rgw.client()
    s3.put_object(Bucket=locked, Key="l", Body=b"a", IfNoneMatch="*")
    second = s3.put_object(Bucket=locked, Key="l", Body=b"b", IfNoneMatch="*")
    assert second["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_only_the_standard_class_is_offered_and_multipart_heads_show_none(
    rgw: Rgw, bucket: str
) -> None:
    s3 = rgw.client()
    with pytest.raises(ClientError) as other:
        s3.create_multipart_upload(Bucket=bucket, Key="s", StorageClass="STANDARD_IA")
    assert error_of(other) == (400, "InvalidArgument")
    multipart(rgw, bucket, "s", StorageClass="STANDARD")
    assert "StorageClass" not in s3.head_object(Bucket=bucket, Key="s")
    s3.put_object(Bucket=bucket, Key="p", Body=b"x", StorageClass="STANDARD")
    assert s3.head_object(Bucket=bucket, Key="p")["StorageClass"] == "STANDARD"
