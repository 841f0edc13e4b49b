"""A member's writer lock in a bucket: conditional PUTs, never a rename, never a DELETE.

S3 has no rename, no lock and no mtime to set, but it has conditional writes
(docs/explanation/object-storage-design.md, "One writer per member"):

- take: a create-only PUT (`If-None-Match: *`): of two runs only one gets 200;
- take over a released or dead lock, renew it (the heartbeat), release it: a
  compare-and-swap PUT (`If-Match: <the ETag last seen>`); of two takers only one
  succeeds, and a holder whose lock was taken over gets 412 at its next heartbeat;
- release writes a `released` state: a DELETE cannot be conditional on RGW 16, and
  an unconditional one could remove the lock a taker has just written;
- age: the lock's `Last-Modified` against the `Date` of the same reply, both the
  server's clock, never this host's.

Detect, don't assume: once per process and target, a probe object under the
prefix checks that a second create-only PUT and a PUT with a wrong ETag are refused
(412), and which form of the ETag `If-Match` honours: unquoted on RGW 16 (the
quoted form is refused even when it matches), quoted on AWS. A store that honours
neither is refused in one line, unless the admin vouches for one writer
(`target.s3.single_writer`): then the lock is written plainly, as a name on the
door that a second run sees but a racing one may not.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Protocol, TypeVar

from botocore.exceptions import ClientError

from zfs_offsite.errors import PermanentError
from zfs_offsite.values.lock_state import LockSeen

T = TypeVar("T")
EtagForm = Literal["unquoted", "quoted"]
PROBE_NAME = ".zfs-offsite-lock-probe"  # `<prefix>/<this>.<token>`, removed at once
WRONG_ETAG = "0" * 32  # no object's MD5 in practice: a compare-and-swap must refuse it
_LOST_RACE = ("PreconditionFailed", "ConditionalRequestConflict")


# boto3's S3 client; its type lives in the dev-only stubs (types-boto3-s3), whose keyword
# signatures no small protocol here could match: the lock makes put, get and delete only.
S3Client = Any


class Requester(Protocol):
    """The store's request runner: its failures as one typed line (`S3Store._call`)."""

    def __call__(self, doing: str, action: Callable[[], T]) -> T: ...


@dataclass(frozen=True)
class Conditions:
    """What the store was seen to honour, or why it cannot hold a lock (`refusal`)."""

    etag_form: EtagForm | None
    refusal: str = ""

    def if_match(self, etag: str) -> str:
        return f'"{etag}"' if self.etag_form == "quoted" else etag


_probed: dict[str, Conditions] = {}  # per target: probed once per process
_probing = threading.Lock()


class S3Lock:
    """The lock object `key`: the backend `archive/lock.py`'s rules run on for S3."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        key: str,
        call: Requester,
        where: str,
        *,
        probe_prefix: str,
        single_writer: bool = False,
    ) -> None:
        self._client = client
        self.bucket = bucket
        self.key = key
        self._call = call
        self.where = where
        self._probe_prefix = probe_prefix
        self.single_writer = single_writer

    # ------------------------------------------------------------------ the backend

    def create(self, data: bytes) -> str | None:
        conditions = self.conditions()
        if conditions.etag_form is None:  # single writer: a plain PUT where there is none
            return None if self.read() is not None else self._put(data)
        return self._put(data, IfNoneMatch="*")

    def read(self) -> LockSeen | None:
        try:
            answer = self._call(
                f"read the lock {self.key}",
                lambda: self._client.get_object(Bucket=self.bucket, Key=self.key),
            )
        except FileNotFoundError:
            return None
        data = self._call(f"read the lock {self.key}", answer["Body"].read)
        written = answer["LastModified"].timestamp()
        return LockSeen(data, _bare(answer.get("ETag", "")), written, _server_date(answer))

    def age(self, seen: LockSeen) -> float:
        """The lock's Last-Modified against the Date of the reply that read it.

        A reply without a Date (no HTTP server sends none) gives 0: such a lock is
        never judged stale by age, only by its process, which is the safe side."""
        now = seen.written if seen.now is None else seen.now
        return max(0.0, now - seen.written)

    def replace_if(self, seen: LockSeen, data: bytes) -> str | None:
        return self._put_if(seen.version, data)

    def renew(self, version: str, data: bytes) -> str | None:
        return self._put_if(version, data)

    def release(self, version: str, data: bytes) -> None:
        self._put_if(version, data)  # a lock taken over meanwhile is the taker's: left

    # ------------------------------------------------------------------ the requests

    def conditions(self) -> Conditions:
        """What the store honours, probed once per process; refused in one line if nothing."""
        if self.single_writer:
            return Conditions(None)
        with _probing:
            found = _probed.get(self.where)
            if found is None:
                found = probe(self._client, self.bucket, self._probe_prefix, self._call, self.where)
                _probed[self.where] = found
        if found.refusal:
            raise PermanentError(found.refusal)
        return found

    def _put_if(self, version: str, data: bytes) -> str | None:
        conditions = self.conditions()
        if conditions.etag_form is None:  # single writer: ours unless someone wrote it since
            seen = self.read()
            return self._put(data) if seen is not None and seen.version == version else None
        return self._put(data, IfMatch=conditions.if_match(version))

    def _put(self, data: bytes, **condition: str) -> str | None:
        """PUT the lock; its ETag, or None when the condition failed (412)."""
        return conditional_put(
            self._client, self.bucket, self.key, data, self._call, "write the lock", **condition
        )


def conditional_put(
    client: S3Client,
    bucket: str,
    key: str,
    data: bytes,
    call: Requester,
    doing: str,
    **condition: str,
) -> str | None:
    """PUT `data` at `key` under `condition`: its unquoted ETag, None on 412 (not met)."""

    def put() -> str | None:
        try:
            answer = client.put_object(Bucket=bucket, Key=key, Body=data, **condition)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) in _LOST_RACE:
                return None
            raise
        return _bare(answer.get("ETag", ""))

    return call(f"{doing} {key}", put)


def probe(client: S3Client, bucket: str, prefix: str, call: Requester, where: str) -> Conditions:
    """Try the conditional writes the lock needs on a probe object of our own."""
    key = "/".join(p for p in (prefix, f"{PROBE_NAME}.{secrets.token_hex(6)}") if p)

    def put(data: bytes, **condition: str) -> str | None:
        return conditional_put(client, bucket, key, data, call, "probe the store with", **condition)

    try:
        first = put(b"1", IfNoneMatch="*")
        if first is None:
            missing = "a create-only PUT of a new object was refused"
            return Conditions(None, _refusal(where, missing))
        if put(b"2", IfNoneMatch="*") is not None:
            missing = "a second create-only PUT (If-None-Match: *) was not refused"
            return Conditions(None, _refusal(where, missing))
        wrong = put(b"3", IfMatch=WRONG_ETAG) or put(b"3", IfMatch=f'"{WRONG_ETAG}"')
        if wrong is not None:
            missing = "a PUT with a wrong ETag in If-Match was not refused"
            return Conditions(None, _refusal(where, missing))
        if put(b"4", IfMatch=first) is not None:
            return Conditions("unquoted")
        if put(b"4", IfMatch=f'"{first}"') is not None:
            return Conditions("quoted")
        missing = "a PUT with the object's own ETag in If-Match was refused, quoted or not"
        return Conditions(None, _refusal(where, missing))
    finally:
        call(f"remove the probe {key}", lambda: client.delete_object(Bucket=bucket, Key=key))


def _refusal(where: str, missing: str) -> str:
    return (
        f"{where}: the store cannot hold a writer lock ({missing}), so two runs could "
        "write one member at once: use a store or bucket with conditional PUTs (AWS S3; "
        "Ceph RGW 16 on an unversioned bucket: it ignores them on versioned and object-lock "
        "buckets), or set target.s3.single_writer = true if only one run can ever write "
        "this archive"
    )


def _bare(etag: str) -> str:
    return etag.strip('"')


def _server_date(answer: Any) -> float | None:
    """The server's clock at its reply (the `Date` header); None if it sent none."""
    date = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if not date:
        return None
    try:
        return parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return None
