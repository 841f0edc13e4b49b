"""The lock's probe of a store's conditional writes, on fakes that honour less than RGW.

Pure logic (which answers mean what): the real store's answers are asserted in
tests/s3/test_s3_lock.py. A fake here is a dictionary of objects whose PUT obeys
only the conditions it is told to.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from zfs_offsite.archive.lock import MemberLock
from zfs_offsite.connect import open_store
from zfs_offsite.errors import PermanentError
from zfs_offsite.remote.s3_lock import S3Lock, probe
from zfs_offsite.settings.sections import TargetSettings


def refused() -> ClientError:
    answer: Any = {
        "Error": {"Code": "PreconditionFailed"},
        "ResponseMetadata": {"HTTPStatusCode": 412},
    }
    return ClientError(answer, "PutObject")


class FakeS3:
    """PUT and DELETE on a dictionary; `create_only`, `cas` and `etag_form` say what it obeys."""

    def __init__(self, *, create_only: bool, cas: bool, etag_form: str = "unquoted") -> None:
        self.objects: dict[str, bytes] = {}
        self.create_only, self.cas, self.etag_form = create_only, cas, etag_form

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **condition: str) -> dict[str, str]:
        current = self.objects.get(Key)
        etag = hashlib.md5(current).hexdigest() if current is not None else None
        if self.create_only and condition.get("IfNoneMatch") == "*" and current is not None:
            raise refused()
        if self.cas and "IfMatch" in condition:
            wanted = {"quoted": f'"{etag}"', "unquoted": etag}.get(self.etag_form)
            if wanted is None or condition["IfMatch"] != wanted:
                raise refused()
        self.objects[Key] = Body
        return {"ETag": f'"{hashlib.md5(Body).hexdigest()}"'}

    def delete_object(self, *, Bucket: str, Key: str) -> dict[str, str]:
        self.objects.pop(Key, None)
        return {}


def call(doing: str, action: Callable[[], Any]) -> Any:
    return action()


def probe_of(fake: FakeS3) -> tuple[str | None, str]:
    found = probe(fake, "b", "lab", call, "s3://b/lab at http://fake")
    assert fake.objects == {}  # the probe object is removed whatever it found
    return found.etag_form, found.refusal


def test_a_store_like_aws_honours_the_quoted_etag() -> None:
    assert probe_of(FakeS3(create_only=True, cas=True, etag_form="quoted")) == ("quoted", "")


def test_a_store_like_rgw_16_honours_the_unquoted_etag() -> None:
    assert probe_of(FakeS3(create_only=True, cas=True)) == ("unquoted", "")


@pytest.mark.parametrize(
    ("fake", "missing"),
    [
        (FakeS3(create_only=False, cas=True), "a second create-only PUT (If-None-Match: *)"),
        (FakeS3(create_only=True, cas=False), "a PUT with a wrong ETag in If-Match was not"),
        (
            FakeS3(create_only=True, cas=True, etag_form="neither"),
            "own ETag in If-Match was refused",
        ),
    ],
)
def test_a_store_without_conditional_puts_is_refused_in_one_line(
    fake: FakeS3, missing: str
) -> None:
    form, refusal = probe_of(fake)
    assert form is None and missing in refusal
    assert "target.s3.single_writer = true" in refusal and "\n" not in refusal


def lock_on(fake: FakeS3, **options: bool) -> S3Lock:
    where = f"s3://b/lab at http://fake-{id(fake)}"  # a target of its own: probed afresh
    return S3Lock(fake, "b", "lab/m/.zfs-offsite.lock", call, where, probe_prefix="lab", **options)


def test_the_lock_on_a_store_that_ignores_if_none_match_is_refused() -> None:
    fake = FakeS3(create_only=False, cas=True)
    with pytest.raises(PermanentError, match=r"cannot hold a writer lock .*single_writer = true"):
        lock_on(fake).create(b"holder")
    assert fake.objects == {}  # nothing written: not even a lock that only looks like one


def test_single_writer_takes_the_admins_word_and_writes_plainly() -> None:
    fake = FakeS3(create_only=False, cas=False)
    lock = lock_on(fake, single_writer=True)
    lock.read = lambda: None  # type: ignore[method-assign]  # no GET on the fake: none there
    assert lock.create(b"holder") is not None
    assert fake.objects == {"lab/m/.zfs-offsite.lock": b"holder"}  # no probe object either


@pytest.mark.parametrize("vouched", [True, False])
def test_target_s3_single_writer_reaches_the_lock_of_an_s3_target(vouched: bool) -> None:
    target = TargetSettings.model_validate(
        {
            "url": "s3://w2-bucket/lab",
            "s3": {"endpoint_url": "http://127.0.0.1:9", "region": "us-east-1"}
            | ({"single_writer": True} if vouched else {}),
        }
    )
    store = open_store(target)
    lock = MemberLock(store, "tank~home", purpose="backup")
    assert isinstance(lock.backend, S3Lock)
    assert lock.backend.key == "lab/tank~home/.zfs-offsite.lock"
    assert lock.backend.single_writer is vouched
