"""S3 Object Lock and storage class on a bucket: what the bucket offers, probed once;
retention on new backup files; deletes that free a version or say why they cannot.

Object Lock (docs/how-to/object-storage.md, "Object Lock"): a version under
retention cannot be deleted or have its retention shortened before its
retain-until date, by anyone in COMPLIANCE mode, by no key without
`s3:BypassGovernanceRetention` in GOVERNANCE mode. So a compromised backup
host cannot destroy the backups it wrote before their retention ends.

Detect, don't assume: once per process and bucket, `GetObjectLockConfiguration`
says whether the bucket has Object Lock (then versioning is on, for good) and its
default retention; `GetBucketVersioning` whether a bucket without it is versioned.
Retention asked for on a bucket without Object Lock is refused in one line before
anything is written (a bucket cannot get Object Lock afterwards on RGW 16).

Retention is asked for at `CreateMultipartUpload`; RGW 16 accepts the headers
there but the completed object has none (*measured*, tests/s3/test_rgw_facts.py),
so after every completion the HEAD is read and, where the retention is missing or
shorter, `PutObjectRetention` sets it on that very version. Only backup files and
their sidecars get it: the lock object, the records and the marker are rewritten
and must stay deletable.

On a versioned bucket a DELETE without a version only adds a delete marker: the
bytes stay, and so would their cost. `delete` removes every version of the key,
oldest first and the current one last, so a refusal (a version under retention)
leaves the file as it was, visible and whole, and comes back as `RetainedError`.
Listings (`ListObjectsV2`) show current versions only: a delete-marked or
noncurrent version is never seen as a backup.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol, TypeVar

from zfs_offsite.errors import PermanentError
from zfs_offsite.remote.store import RetainedError

T = TypeVar("T")
Mode = Literal["GOVERNANCE", "COMPLIANCE"]
S3Client = Any  # boto3's client; its type lives in the dev-only stubs (see s3_lock.py)
# What a file is to retention: a backup's data, one of its sidecars, or anything else.
FileRole = Literal["data", "sidecar", "other"]


def _other(name: str) -> FileRole:
    return "other"


class Requester(Protocol):
    """The store's request runner: its failures as one typed line (`S3Store._call`)."""

    def __call__(self, doing: str, action: Callable[[], T]) -> T: ...


@dataclass(frozen=True)
class Wanted:
    """What the settings ask for (`target.s3.object_lock_*`, `storage_class`)."""

    days: int = 0
    mode: Mode = "GOVERNANCE"
    storage_class: str | None = None
    # The file layout's judgement of a file name (connect.py passes archive.names'):
    # data objects get the storage class, they and their sidecars the retention.
    role: Callable[[str], FileRole] = _other


@dataclass(frozen=True)
class BucketLock:
    """What the bucket was seen to offer."""

    enabled: bool  # Object Lock on the bucket (and so versioning)
    versioned: bool
    default_mode: str | None = None
    default_days: int | None = None
    denied: bool = False  # the key may not read the configuration: treated as none


def retain_until(now: datetime, days: int) -> datetime:
    """The retain-until date of a file written at `now`: whole seconds, `days` later."""
    return (now + timedelta(days=days)).replace(microsecond=0)


_probed: dict[tuple[str, str], BucketLock] = {}  # (endpoint, bucket): once per process
_probing = threading.Lock()


class Retention:
    """Object Lock and storage class for one bucket (`S3Store` holds one)."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        endpoint: str,
        call: Requester,
        where: str,
        wanted: Wanted,
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._endpoint = endpoint
        self._call = call
        self._where = where
        self.wanted = wanted

    def bucket_lock(self) -> BucketLock:
        """The bucket's Object Lock and versioning, asked once per process."""
        with _probing:
            found = _probed.get((self._endpoint, self._bucket))
            if found is None:
                found = _probed[(self._endpoint, self._bucket)] = self._probe()
            return found

    def _probe(self) -> BucketLock:
        try:
            answer = self._call(
                "read the bucket's object lock configuration",
                lambda: self._client.get_object_lock_configuration(Bucket=self._bucket),
            )
        except (FileNotFoundError, PermanentError) as exc:
            # RGW and AWS: 404 ObjectLockConfigurationNotFoundError for a bucket without it;
            # a key kept to the objects (no s3:GetBucketObjectLockConfiguration): AccessDenied.
            if "AccessDenied" in str(exc):
                return BucketLock(False, False, denied=True)
            if "ObjectLockConfigurationNotFound" not in str(exc) and not isinstance(
                exc, FileNotFoundError
            ):
                raise
            try:
                versioning = self._call(
                    "read the bucket's versioning",
                    lambda: self._client.get_bucket_versioning(Bucket=self._bucket),
                )
            except PermanentError as denied:
                if "AccessDenied" not in str(denied):
                    raise
                return BucketLock(False, False, denied=True)
            return BucketLock(False, versioning.get("Status") in ("Enabled", "Suspended"))
        config = answer.get("ObjectLockConfiguration", {})
        default = config.get("Rule", {}).get("DefaultRetention", {})
        days = default.get("Days") or (365 * default["Years"] if default.get("Years") else None)
        return BucketLock(
            config.get("ObjectLockEnabled") == "Enabled", True, default.get("Mode"), days
        )

    def check(self) -> None:
        """Refuse, in one line, retention asked for on a bucket without Object Lock."""
        if not self.wanted.days:
            return
        found = self.bucket_lock()
        if found.denied:
            raise PermanentError(
                f"{self._where}: target.s3.object_lock_days = {self.wanted.days} but the key may "
                f"not read the object lock configuration of {self._bucket!r} (AccessDenied): "
                "grant it s3:GetBucketObjectLockConfiguration, s3:PutObjectRetention and "
                "s3:GetObjectRetention on the bucket"
            )
        if not found.enabled:
            raise PermanentError(
                f"{self._where}: target.s3.object_lock_days = {self.wanted.days} but the bucket "
                f"{self._bucket!r} has no Object Lock: create a bucket with object lock "
                "enabled (aws s3api create-bucket --object-lock-enabled-for-bucket; it cannot "
                "be switched on later) and point target.url at it, or set object_lock_days = 0"
            )

    def upload_args(self, name: str, now: datetime) -> dict[str, Any]:
        """CreateMultipartUpload's extra arguments for the file `name`."""
        role = self.wanted.role(name.rsplit("/", 1)[-1])
        if role == "other":
            return {}
        args: dict[str, Any] = {}
        if self.wanted.storage_class and role == "data":
            args["StorageClass"] = self.wanted.storage_class
        if self.wanted.days:
            self.check()
            args["ObjectLockMode"] = self.wanted.mode
            args["ObjectLockRetainUntilDate"] = retain_until(now, self.wanted.days)
        return args

    def refused(self, exc: PermanentError, key: str, args: dict[str, Any]) -> PermanentError:
        """A refused upload start as the setting to fix, when the storage class was the cause
        (RGW: 400 InvalidArgument for a class its placement does not offer)."""
        if "StorageClass" not in args or "InvalidArgument" not in str(exc):
            return exc
        return PermanentError(
            f"{self._where}: the store refused storage class {args['StorageClass']!r} for {key} "
            "(InvalidArgument): set target.s3.storage_class to a class the store offers (Ceph "
            "RGW: STANDARD and those its admin placed in the zone), or unset it"
        )

    def after_complete(self, key: str, head: dict[str, Any], now: datetime) -> None:
        """Set the retention on the completed version if the store dropped it (RGW 16)."""
        if not self.wanted.days or self.wanted.role(key.rsplit("/", 1)[-1]) == "other":
            return
        until = retain_until(now, self.wanted.days)
        held = head.get("ObjectLockRetainUntilDate")
        if held is not None and held >= until and head.get("ObjectLockMode") == self.wanted.mode:
            return
        version = head.get("VersionId")
        self._call(
            f"set the retention of {key}",
            lambda: self._client.put_object_retention(
                Bucket=self._bucket,
                Key=key,
                Retention={"Mode": self.wanted.mode, "RetainUntilDate": until},
                **({"VersionId": version} if version else {}),
            ),
        )

    def retained_until(self, key: str, now: datetime) -> datetime | None:
        """The latest retain-until date after `now` among the key's versions; None if none
        (or the bucket has no Object Lock)."""
        if not self.bucket_lock().enabled:
            return None
        latest: datetime | None = None
        for version in self._versions(key):
            if version[2]:  # a delete marker holds no retention
                continue
            try:
                answer = self._call(
                    f"read the retention of {key}",
                    lambda vid=version[1]: self._client.get_object_retention(  # type: ignore[misc]
                        Bucket=self._bucket, Key=key, VersionId=vid
                    ),
                )
            except (FileNotFoundError, PermanentError) as exc:
                if isinstance(exc, FileNotFoundError) or "ObjectLockConfigurationNotFound" in str(
                    exc
                ):
                    continue  # a version without retention
                raise
            until = answer.get("Retention", {}).get("RetainUntilDate")
            if until is not None and until > now and (latest is None or until > latest):
                latest = until
        return latest

    def delete(self, key: str) -> None:
        """Delete the object; on a versioned bucket every version of it, the current last."""
        if not self.bucket_lock().versioned:
            self._call(
                f"remove {key}", lambda: self._client.delete_object(Bucket=self._bucket, Key=key)
            )
            return
        for _, version_id, _ in self._versions(key):
            try:
                self._call(
                    f"remove {key} (version {version_id})",
                    lambda vid=version_id: self._client.delete_object(  # type: ignore[misc]
                        Bucket=self._bucket, Key=key, VersionId=vid
                    ),
                )
            except PermanentError as exc:
                if "AccessDenied" not in str(exc) and "object lock" not in str(exc).lower():
                    raise
                until = self.retained_until(key, datetime.now(UTC))
                if until is None:  # refused for another reason: the key's rights
                    raise
                raise RetainedError(
                    f"{self._where}: {key} is kept by the store: object lock until "
                    f"{until.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC",
                    until,
                ) from exc

    def _versions(self, key: str) -> list[tuple[datetime, str, bool]]:
        """(LastModified, VersionId, is a delete marker) of the key's versions, oldest first
        and the current one last."""
        pages = self._client.get_paginator("list_object_versions").paginate(
            Bucket=self._bucket, Prefix=key
        )
        found: list[tuple[bool, datetime, str, bool]] = []
        for page in self._call(f"list the versions of {key}", lambda: list(pages)):
            for kind, marker in (("Versions", False), ("DeleteMarkers", True)):
                for item in page.get(kind, []):
                    if item.get("Key") == key:
                        found.append(
                            (
                                bool(item.get("IsLatest")),
                                item.get("LastModified", datetime.min.replace(tzinfo=UTC)),
                                item.get("VersionId", "null"),
                                marker,
                            )
                        )
        found.sort(key=lambda v: (v[0], v[1]))
        return [(when, vid, marker) for _, when, vid, marker in found]
