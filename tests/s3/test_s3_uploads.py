"""A stream's partial file on S3 is a multipart upload of its final key (real RGW).

Nothing is under the final key until the "rename" (the completion); the partial's
size is the store's (ListParts); an upload of another process shows as a
`.partial` and is aborted by its removal; a quota met mid-upload is a full disk.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import closing

import pytest

from tests.s3.test_s3_store import open_s3
from tests.support.rgw import Rgw
from zfs_offsite.errors import DiskFullError
from zfs_offsite.remote import s3_parts
from zfs_offsite.remote.store import QuotaFullError

pytestmark = pytest.mark.usefixtures("aws_env")
MiB = 1 << 20
FINAL = "tank~home/tank~home@a.zfs.zst"
PARTIAL = FINAL + ".0123456789ab.partial"


@pytest.fixture(autouse=True)
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """5 MiB parts (S3's smallest) so a few MiB make several parts."""
    monkeypatch.setattr(s3_parts, "BASE_PART", 5 * MiB)


def objects(rgw: Rgw, bucket: str) -> list[str]:
    return [o["Key"] for o in rgw.client().list_objects_v2(Bucket=bucket).get("Contents", [])]


def uploads(rgw: Rgw, bucket: str) -> list[str]:
    found = rgw.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return [u["Key"] for u in found]


def test_a_stream_appears_under_its_final_key_only_when_completed(rgw: Rgw, bucket: str) -> None:
    body = os.urandom(12 * MiB + 7)
    with closing(open_s3(rgw, bucket)) as store:
        handle = store.open_write(PARTIAL)
        for start in range(0, len(body), MiB):
            handle.write(body[start : start + MiB])
        handle.sync()
        assert objects(rgw, bucket) == [] and uploads(rgw, bucket) == [f"lab/{FINAL}"]
        handle.close()
        entry = store.stat(PARTIAL)
        assert entry is not None and entry.size == len(body)
        assert [(e.name, e.size) for e in store.listdir("tank~home")] == [
            (PARTIAL.split("/")[1], len(body))
        ]
        assert store.stat(FINAL) is None
        store.rename(PARTIAL, FINAL)
        assert objects(rgw, bucket) == [f"lab/{FINAL}"] and uploads(rgw, bucket) == []
        stored = b"".join(store.read_chunks(FINAL))
        assert hashlib.sha256(stored).digest() == hashlib.sha256(body).digest()
        head = rgw.client().head_object(Bucket=bucket, Key=f"lab/{FINAL}")
        assert head["ETag"].endswith('-3"')  # 5 + 5 + 2 MiB


def test_an_abandoned_upload_shows_as_a_partial_and_its_removal_aborts_it(
    rgw: Rgw, bucket: str
) -> None:
    with closing(open_s3(rgw, bucket)) as gone:
        handle = gone.open_write(PARTIAL)
        handle.write(os.urandom(6 * MiB))
        handle.sync()  # one full part stored, then the process "dies"
    with closing(open_s3(rgw, bucket)) as store:
        listed = store.listdir("tank~home")
        assert len(listed) == 1 and listed[0].name.endswith(".partial")
        assert listed[0].name.startswith(FINAL.split("/")[1] + ".")
        assert listed[0].size == 5 * MiB
        assert store.stat(FINAL) is None
        store.remove(f"tank~home/{listed[0].name}")
        assert store.listdir("tank~home") == []
    assert uploads(rgw, bucket) == [] and objects(rgw, bucket) == []


def test_a_quota_met_mid_upload_is_a_full_disk(rgw: Rgw, bucket: str) -> None:
    rgw.admin("quota", "set", "--quota-scope=bucket", f"--bucket={bucket}", f"--max-size={8 * MiB}")
    rgw.admin("quota", "enable", "--quota-scope=bucket", f"--bucket={bucket}")
    with closing(open_s3(rgw, bucket)) as store:
        handle = store.open_write(PARTIAL)
        with pytest.raises(DiskFullError) as caught:
            for _ in range(4):
                handle.write(os.urandom(5 * MiB))
            handle.close()
        handle.abort()
        store.remove(PARTIAL)
    assert isinstance(caught.value, QuotaFullError)
    assert "over its quota" in str(caught.value)
    assert uploads(rgw, bucket) == [] and objects(rgw, bucket) == []


def test_parts_go_out_whole_without_waiting_for_100_continue(rgw: Rgw, bucket: str) -> None:
    """A part is sent in one piece as the request body: botocore adds no `Expect:
    100-continue` (a wait of up to 1 s per part where a server or proxy never answers
    it) and reads no file back in 16 KiB sends."""
    seen: list[tuple[str | None, int]] = []

    def record(request: object, **_: object) -> None:
        headers, body = request.headers, request.body  # type: ignore[attr-defined]
        seen.append((headers.get("Expect"), len(body) if hasattr(body, "__len__") else -1))

    body = os.urandom(11 * MiB)
    with closing(open_s3(rgw, bucket)) as store:
        store._client.meta.events.register("before-send.s3.UploadPart", record)
        handle = store.open_write(PARTIAL)
        handle.write(body)
        handle.close()
        store.rename(PARTIAL, FINAL)
        got = rgw.client().get_object(Bucket=bucket, Key=f"lab/{FINAL}")["Body"].read()
    assert got == body
    assert seen == [(None, 5 * MiB), (None, 5 * MiB), (None, MiB)]
