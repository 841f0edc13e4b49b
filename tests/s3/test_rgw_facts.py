"""What the object-storage design relies on, asserted on the real store (Ceph RGW 16).

docs/explanation/object-storage-design.md builds on each of these; a store (or a
Ceph upgrade) that behaves otherwise fails here first, naming the fact.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from botocore.exceptions import ClientError

from tests.support.rgw import Rgw

if TYPE_CHECKING:
    from types_boto3_s3.type_defs import CompletedPartTypeDef

MiB = 1 << 20
PART = 5 * MiB  # S3's smallest part (but the last)
REPO = Path(__file__).resolve().parents[2]


def error_of(failure: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    response = failure.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def stream(size: int) -> Iterator[bytes]:
    """`size` random bytes from a pipe, as `zfs send` gives them, in PART-sized pieces."""
    with subprocess.Popen(["head", "-c", str(size), "/dev/urandom"], stdout=subprocess.PIPE) as p:
        assert p.stdout is not None
        while piece := p.stdout.read(PART):
            yield piece


def multipart_etag(parts: list[bytes]) -> str:
    """S3's ETag of a multipart object: MD5 of the parts' MD5s, dash, the part count."""
    joined = b"".join(hashlib.md5(part).digest() for part in parts)
    return f'"{hashlib.md5(joined).hexdigest()}-{len(parts)}"'


def test_a_multipart_upload_from_a_stream_is_the_stream(rgw: Rgw, bucket: str) -> None:
    s3 = rgw.client()
    upload = s3.create_multipart_upload(Bucket=bucket, Key="m/f.zfs.zst")["UploadId"]
    sent: list[bytes] = []
    parts: list[CompletedPartTypeDef] = []
    whole = hashlib.sha256()
    for number, piece in enumerate(stream(12 * MiB + 123), start=1):
        answer = s3.upload_part(
            Bucket=bucket, Key="m/f.zfs.zst", UploadId=upload, PartNumber=number, Body=piece
        )
        # Each part's ETag is its MD5: the server-side checksum a resume compares with.
        assert answer["ETag"] == f'"{hashlib.md5(piece).hexdigest()}"'
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        sent.append(piece)
        whole.update(piece)
    # Nothing under the key until the completion: the upload is the "partial".
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="m/")
    s3.complete_multipart_upload(
        Bucket=bucket, Key="m/f.zfs.zst", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    body = s3.get_object(Bucket=bucket, Key="m/f.zfs.zst")["Body"].read()
    assert len(sent) == 3 and hashlib.sha256(body).digest() == whole.digest()


def test_the_completion_answers_no_etag_but_head_gives_the_multipart_one(
    rgw: Rgw, bucket: str
) -> None:
    s3 = rgw.client()
    pieces = [b"a" * PART, b"tail"]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    parts: list[CompletedPartTypeDef] = [
        {"PartNumber": n, "ETag": s3.upload_part(
            Bucket=bucket, Key="k", UploadId=upload, PartNumber=n, Body=piece)["ETag"]}
        for n, piece in enumerate(pieces, start=1)
    ]  # fmt: skip
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="k", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    assert done.get("ETag", "") == ""  # RGW 16: empty in the response; AWS gives it
    assert s3.head_object(Bucket=bucket, Key="k")["ETag"] == multipart_etag(pieces)


BEGIN = """
import json, sys
from pathlib import Path
from tests.support.rgw import load
s3 = load(Path(sys.argv[1])).client()
bucket, key = sys.argv[2], sys.argv[3]
upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
for n in (1, 2):
    body = bytes([n]) * (5 << 20)
    s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=n, Body=body)
print(json.dumps(upload))
"""


def test_another_process_lists_the_parts_and_completes_by_upload_id(rgw: Rgw, bucket: str) -> None:
    """A cut run's upload is found and finished by the next run: nothing is kept in memory."""
    first = subprocess.run(
        [sys.executable, "-c", BEGIN, rgw.directory, bucket, "m/f"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    started = json.loads(first.stdout)
    s3 = rgw.client()
    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix="m/")["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("m/f", started)]
    listed = s3.list_parts(Bucket=bucket, Key="m/f", UploadId=started)["Parts"]
    pieces = [bytes([1]) * PART, bytes([2]) * PART]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == [
        (n, f'"{hashlib.md5(piece).hexdigest()}"', PART) for n, piece in enumerate(pieces, 1)
    ]
    third = s3.upload_part(Bucket=bucket, Key="m/f", UploadId=started, PartNumber=3, Body=b"end")
    parts: list[CompletedPartTypeDef] = [
        {"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in listed
    ]
    parts.append({"PartNumber": 3, "ETag": third["ETag"]})
    s3.complete_multipart_upload(
        Bucket=bucket, Key="m/f", UploadId=started, MultipartUpload={"Parts": parts}
    )
    assert s3.get_object(Bucket=bucket, Key="m/f")["Body"].read() == b"".join(pieces) + b"end"


def test_a_create_only_put_refuses_the_second_writer(rgw: Rgw, bucket: str) -> None:
    s3 = rgw.client()
    s3.put_object(Bucket=bucket, Key="m/.lock", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as second:
        s3.put_object(Bucket=bucket, Key="m/.lock", Body=b"second", IfNoneMatch="*")
    assert error_of(second) == (412, "PreconditionFailed")
    assert s3.get_object(Bucket=bucket, Key="m/.lock")["Body"].read() == b"first"


def test_no_conditional_completion_and_no_compare_and_swap_put(rgw: Rgw, bucket: str) -> None:
    """RGW 16 lacks what newer S3 services have: the lock cannot rest on them."""
    s3 = rgw.client()
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")["ETag"]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="k", UploadId=upload, PartNumber=1, Body=b"v2")
    s3.complete_multipart_upload(  # If-None-Match: * is ignored: the object is replaced
        Bucket=bucket,
        Key="k",
        UploadId=upload,
        IfNoneMatch="*",
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v2"
    etag = s3.head_object(Bucket=bucket, Key="k")["ETag"]
    with pytest.raises(ClientError) as swap:  # the current ETag, quoted as SDKs send it
        s3.put_object(Bucket=bucket, Key="k", Body=b"v3", IfMatch=etag)
    assert error_of(swap) == (412, "PreconditionFailed")


def test_an_unquoted_if_match_put_is_a_compare_and_swap(rgw: Rgw, bucket: str) -> None:
    """What renews or takes over a lock: the write lands only on the ETag last read."""
    s3 = rgw.client()
    first = s3.put_object(Bucket=bucket, Key="m/.lock", Body=b"a")["ETag"].strip('"')
    with pytest.raises(ClientError) as wrong:
        s3.put_object(Bucket=bucket, Key="m/.lock", Body=b"x", IfMatch="0" * 32)
    assert error_of(wrong) == (412, "PreconditionFailed")
    s3.put_object(Bucket=bucket, Key="m/.lock", Body=b"b", IfMatch=first)
    with pytest.raises(ClientError) as stale:  # a second writer that read "a" too
        s3.put_object(Bucket=bucket, Key="m/.lock", Body=b"c", IfMatch=first)
    assert error_of(stale) == (412, "PreconditionFailed")
    assert s3.get_object(Bucket=bucket, Key="m/.lock")["Body"].read() == b"b"
    # ...but a DELETE's If-Match is ignored: releasing a lock cannot be conditional.
    s3.delete_object(Bucket=bucket, Key="m/.lock", IfMatch="0" * 32)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_parts_carry_an_md5_only_and_the_completion_checks_it(rgw: Rgw, bucket: str) -> None:
    """No SHA-256 per part on RGW 16 (flexible checksums came later): MD5 ETags it is,
    and CompleteMultipartUpload refuses a part list whose ETags are not the parts'."""
    s3 = rgw.client()
    upload = s3.create_multipart_upload(Bucket=bucket, Key="m/f", Metadata={"sha256": "ab" * 32})[
        "UploadId"
    ]
    part = s3.upload_part(
        Bucket=bucket,
        Key="m/f",
        UploadId=upload,
        PartNumber=1,
        Body=b"x",
        ChecksumAlgorithm="SHA256",
    )
    assert "ChecksumSHA256" not in part
    listed = s3.list_parts(Bucket=bucket, Key="m/f", UploadId=upload)["Parts"]
    assert "ChecksumSHA256" not in listed[0]
    assert listed[0]["ETag"] == f'"{hashlib.md5(b"x").hexdigest()}"'
    with pytest.raises(ClientError) as wrong:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="m/f",
            UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": f'"{"0" * 32}"'}]},
        )
    assert error_of(wrong) == (400, "InvalidPart")
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="m/f",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    # Metadata given at the start lands on the object: a sidecar's facts can ride along.
    assert s3.head_object(Bucket=bucket, Key="m/f")["Metadata"] == {"sha256": "ab" * 32}


def test_an_aborted_upload_is_gone(rgw: Rgw, bucket: str) -> None:
    s3 = rgw.client()
    upload = s3.create_multipart_upload(Bucket=bucket, Key="m/f")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="m/f", UploadId=upload, PartNumber=1, Body=b"x" * PART)
    s3.abort_multipart_upload(Bucket=bucket, Key="m/f", UploadId=upload)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    with pytest.raises(ClientError) as gone:
        s3.list_parts(Bucket=bucket, Key="m/f", UploadId=upload)
    # RGW 16 answers NoSuchKey where AWS answers NoSuchUpload: both mean "start afresh".
    assert error_of(gone) == (404, "NoSuchKey")


def test_a_full_bucket_refuses_with_quota_exceeded(rgw: Rgw, bucket: str) -> None:
    """The object store's "disk full": a quota set by the admin, met by a part upload."""
    rgw.admin("quota", "set", "--quota-scope=bucket", f"--bucket={bucket}", f"--max-size={8 * MiB}")
    rgw.admin("quota", "enable", "--quota-scope=bucket", f"--bucket={bucket}")
    s3 = rgw.client()
    upload = s3.create_multipart_upload(Bucket=bucket, Key="m/f")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="m/f", UploadId=upload, PartNumber=1, Body=b"x" * PART)
    with pytest.raises(ClientError) as full:
        s3.upload_part(Bucket=bucket, Key="m/f", UploadId=upload, PartNumber=2, Body=b"y" * PART)
    assert error_of(full) == (403, "QuotaExceeded")
    with pytest.raises(ClientError) as small:  # a small object (a sidecar, a lock) too
        s3.put_object(Bucket=bucket, Key="m/f.sha256", Body=b"z" * (4 * MiB))
    assert error_of(small) == (403, "QuotaExceeded")
    s3.abort_multipart_upload(Bucket=bucket, Key="m/f", UploadId=upload)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)  # nothing looks complete
