"""What a resume asks of the S3 store (real RGW): checkpoint objects another process finds,
an upload of another process continued at a part boundary, and its parts checked by MD5.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import closing

import pytest

from tests.s3.test_s3_store import open_s3
from tests.support.rgw import Rgw
from zfs_offsite.errors import IntegrityError, PermanentError
from zfs_offsite.remote import s3_parts
from zfs_offsite.values.partials import checkpoint_name

pytestmark = pytest.mark.usefixtures("aws_env")
MiB = 1 << 20
FINAL = "tank~home/tank~home@a.zfs.zst"
PARTIAL = FINAL + ".0123456789ab.partial"


@pytest.fixture(autouse=True)
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """5 MiB parts (S3's smallest) so a few MiB make several parts."""
    monkeypatch.setattr(s3_parts, "BASE_PART", 5 * MiB)


def test_another_process_finds_the_checkpoints_beside_the_upload_and_continues_it(
    rgw: Rgw, bucket: str
) -> None:
    body = os.urandom(17 * MiB)
    with closing(open_s3(rgw, bucket)) as first:
        handle = first.open_write(PARTIAL)
        handle.write(body[: 12 * MiB])
        handle.sync()  # parts 1 and 2 acknowledged; 2 MiB still buffered when it "dies"
        checkpoints = first.open_write(checkpoint_name(PARTIAL))
        checkpoints.write(b"header\none\n")
        checkpoints.sync()
        checkpoints.write(b"two\n")
        checkpoints.sync()  # replaced whole: no append on S3
        own = {e.name for e in first.listdir("tank~home")}
        assert own == {PARTIAL.split("/")[1], checkpoint_name(PARTIAL).split("/")[1]}
    with closing(open_s3(rgw, bucket)) as store:
        (upload,) = [e for e in store.listdir("tank~home") if ".ckpt." not in e.name]
        partial = f"tank~home/{upload.name}"
        assert upload.size == 10 * MiB and partial != PARTIAL
        assert store.stat(checkpoint_name(partial)) is not None  # named after the upload
        with store.open_read(checkpoint_name(partial)) as read:
            assert read.read() == b"header\none\ntwo\n"
        with store.open_append(checkpoint_name(partial), 11) as cut:
            cut.write(b"three\n")
        with store.open_read(checkpoint_name(partial)) as read:
            assert read.read() == b"header\none\nthree\n"
        check = store.check_parts(partial)
        assert check.feed(body[: 10 * MiB]) is None and check.matched == 10 * MiB
        with pytest.raises(PermanentError, match="do not end a part"):
            store.open_append(partial, 7 * MiB)
        with pytest.raises(IntegrityError, match="fewer than the 15728640 to resume after"):
            store.open_append(partial, 15 * MiB)
        with store.open_append(partial, 5 * MiB) as handle:  # part 2 sent again, then on
            handle.write(body[5 * MiB :])
        store.rename(partial, FINAL)
        stored = b"".join(store.read_chunks(FINAL))
        assert hashlib.sha256(stored).digest() == hashlib.sha256(body).digest()
        store.remove(checkpoint_name(partial))
        assert [e.name for e in store.listdir("tank~home")] == [FINAL.split("/")[1]]


def test_a_stored_part_with_other_bytes_fails_its_md5_check(rgw: Rgw, bucket: str) -> None:
    body = os.urandom(10 * MiB)
    with closing(open_s3(rgw, bucket)) as first:
        with first.open_write(PARTIAL) as handle:
            handle.write(body)
        upload_id = first._uploads[PARTIAL].upload_id
    rgw.client().upload_part(
        Bucket=bucket,
        Key=f"lab/{FINAL}",
        UploadId=upload_id,
        PartNumber=2,
        Body=os.urandom(5 * MiB),
    )
    with closing(open_s3(rgw, bucket)) as store:
        (upload,) = store.listdir("tank~home")
        check = store.check_parts(f"tank~home/{upload.name}")
        why = check.feed(body)
        assert why is not None and "part 2's stored MD5" in why
        assert check.matched == 5 * MiB
