"""Small objects written to the bucket with the file targets' guarantees (real RGW).

Sidecars, records, the marker and the lock are written by the core's own helpers
(`write_small_file`, `MemberLock`): each appears whole under its final key or not
at all, an exclusive create refuses an existing object at open, and a missing
bucket or a bucket quota is one line naming the fix.
"""

from __future__ import annotations

from contextlib import closing

import pytest

from tests.s3.test_s3_store import open_s3
from tests.support.rgw import Rgw
from zfs_offsite.archive.lock import MemberLock
from zfs_offsite.errors import DiskFullError, LockBusyError, PermanentError
from zfs_offsite.remote.store import QuotaFullError, read_small_file, write_small_file

pytestmark = pytest.mark.usefixtures("aws_env")


def keys(rgw: Rgw, bucket: str) -> dict[str, bytes]:
    s3 = rgw.client()
    found = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in found}


def test_a_small_file_appears_whole_under_its_key_and_leaves_no_partial(
    rgw: Rgw, bucket: str
) -> None:
    with closing(open_s3(rgw, bucket)) as store:
        store.create_root()
        store.makedirs("tank~home")
        write_small_file(store, ".zfs-offsite-verified.json", b'{"n": 1}\n')
        assert keys(rgw, bucket) == {"lab/.zfs-offsite-verified.json": b'{"n": 1}\n'}
        write_small_file(store, ".zfs-offsite-verified.json", b'{"n": 2}\n')  # replaces
        assert keys(rgw, bucket) == {"lab/.zfs-offsite-verified.json": b'{"n": 2}\n'}
        assert read_small_file(store, ".zfs-offsite-verified.json") == b'{"n": 2}\n'
        entry = store.stat(".zfs-offsite-verified.json")
        assert entry is not None and entry.size == 9


def test_an_exclusive_create_refuses_an_existing_object_at_open(rgw: Rgw, bucket: str) -> None:
    rgw.client().put_object(Bucket=bucket, Key="lab/m/.zfs-offsite.lock", Body=b"theirs")
    with closing(open_s3(rgw, bucket)) as store:
        with pytest.raises(FileExistsError):
            store.open_write("m/.zfs-offsite.lock")
        handle = store.open_write("m/new")
        with handle:
            handle.write(b"ours")
    assert keys(rgw, bucket) == {"lab/m/.zfs-offsite.lock": b"theirs", "lab/m/new": b"ours"}


def test_the_member_lock_is_taken_refused_to_a_second_run_and_released(
    rgw: Rgw, bucket: str
) -> None:
    with closing(open_s3(rgw, bucket)) as store, closing(open_s3(rgw, bucket)) as other:
        with MemberLock(store, "m", purpose="backup", run="one", wait_seconds=0) as lock:
            assert b'"run": "one"' in keys(rgw, bucket)["lab/m/.zfs-offsite.lock"]
            second = MemberLock(other, "m", purpose="backup", run="two", wait_seconds=0)
            with pytest.raises(LockBusyError, match="is writing to it"):
                second.acquire()
            lock.verify()
            lock._last_refresh = 0.0  # due now: the heartbeat renews the lock object
            lock.refresh()
            lock.verify()
        # Released, never deleted (remote/s3_lock.py); the probes are gone.
        left = keys(rgw, bucket)
        assert set(left) == {"lab/m/.zfs-offsite.lock"}
        assert b'"state": "released"' in left["lab/m/.zfs-offsite.lock"]


def test_a_missing_bucket_is_refused_by_a_write_and_never_created(rgw: Rgw) -> None:
    with closing(open_s3(rgw, "zfs-offsite-no-such-bucket")) as store:
        for write in (store.create_root, lambda: store.makedirs("m")):
            with pytest.raises(PermanentError) as caught:
                write()
            line = str(caught.value)
            assert "the bucket 'zfs-offsite-no-such-bucket' does not exist" in line
            assert "zfs-offsite never creates a bucket" in line and "\n" not in line
    names = [b.get("Name") for b in rgw.client().list_buckets().get("Buckets", [])]
    assert "zfs-offsite-no-such-bucket" not in names


def test_a_bucket_quota_is_a_full_disk_in_one_line(rgw: Rgw, bucket: str) -> None:
    rgw.admin("quota", "set", "--quota-scope=bucket", f"--bucket={bucket}", "--max-objects=1")
    rgw.admin("quota", "enable", "--quota-scope=bucket", f"--bucket={bucket}")
    rgw.client().put_object(Bucket=bucket, Key="lab/filler", Body=b"x")
    with closing(open_s3(rgw, bucket)) as store, pytest.raises(DiskFullError) as caught:
        write_small_file(store, "m/x.zst.sha256", b"0" * 65)
    assert isinstance(caught.value, QuotaFullError) and not caught.value.retryable
    line = str(caught.value)
    assert "over its quota" in line and "QuotaExceeded" in line and "\n" not in line
    assert keys(rgw, bucket) == {"lab/filler": b"x"}  # nothing else, no partial
