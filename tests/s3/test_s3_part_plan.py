"""The part sizes of an upload come from the stream's size estimate, and a resumed upload
keeps the sizes it started with whatever the next run's estimate (real RGW, the real
upload pipeline with a stand-in for `zfs send`).

Base parts of 5 MiB (S3's smallest) and checkpoints every 10 MiB stand for 32 MiB and
64 MiB: an estimate of 40 GiB then asks for 10 MiB parts (the base family's planned
10,000 parts of 5 MiB hold 48.8 GiB, less than 40 GiB x 1.25).
"""

from __future__ import annotations

import hashlib
import logging
import random
from contextlib import closing

import pytest

from tests.s3.test_s3_store import open_s3
from tests.support.rgw import Rgw
from tests.unit.stream.test_checkpoints import END, IDENTITY, FakeSend
from zfs_offsite.archive.names import Compression
from zfs_offsite.errors import StoreError
from zfs_offsite.remote import s3_parts
from zfs_offsite.remote.s3 import S3Store
from zfs_offsite.remote.store import Writer
from zfs_offsite.stream import resume as resume_module
from zfs_offsite.stream.checkpoints import parse_checkpoints
from zfs_offsite.stream.compression import Compressor, compressor
from zfs_offsite.stream.upload import Resumable, StreamResult, stream_to_store
from zfs_offsite.values.partials import checkpoint_name

pytestmark = pytest.mark.usefixtures("aws_env")
MiB = 1 << 20
GiB = 1 << 30
PATH = "tank~home/tank~home@a.zfs.zst"


@pytest.fixture(autouse=True)
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3_parts, "BASE_PART", 5 * MiB)
    monkeypatch.setattr(resume_module, "CHUNK_BYTES", 10 * MiB)


class CutStore(S3Store):
    """An S3 store whose stream writes fail once `cut_after` bytes were written."""

    cut_after = 25 * MiB

    def _cut(self, writer: Writer) -> Writer:
        inner, sent = writer.write, [0]

        def write(data: bytes | memoryview) -> int:
            sent[0] += len(data)
            if sent[0] > self.cut_after:
                raise StoreError("upload part: connection failed: cut")
            return inner(data)

        writer.write = write  # type: ignore[method-assign]
        return writer

    def open_sized(self, path: str, expected_size: int | None):  # type: ignore[no-untyped-def]
        return self._cut(super().open_sized(path, expected_size))


def upload(store: S3Store, raw: bytes, estimate: int | None) -> StreamResult:
    def start() -> tuple[FakeSend, Compressor]:
        return FakeSend(raw), compressor(Compression.ZSTD, 3)

    return stream_to_store(
        *start(),  # type: ignore[arg-type]
        store,
        PATH,
        expected_raw=estimate,
        resume=Resumable(IDENTITY, start),  # type: ignore[arg-type]
    )


def test_the_estimate_sets_the_parts_and_a_resume_keeps_them_under_another_estimate(
    rgw: Rgw, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    raw = random.Random(22).randbytes(36 * MiB) + END  # incompressible: ~36 MiB stored
    first = CutStore(bucket, "lab", endpoint_url=rgw.endpoint, region=rgw.region, timeout=10)
    with (
        closing(first),
        caplog.at_level(logging.INFO, logger="zfs_offsite.remote.s3"),
        pytest.raises(StoreError, match="cut"),
    ):
        upload(first, raw, estimate=40 * GiB)
    assert f"parts of 10 MiB from a size estimate of {40 * GiB} bytes" in caplog.text
    with closing(open_s3(rgw, bucket)) as store:
        (kept,) = [e for e in store.listdir("tank~home") if ".ckpt." not in e.name]
        assert kept.size == 20 * MiB  # parts 1 and 2, of 10 MiB each
        # The next night: zfs-fuse (no estimate) would cut 5 MiB parts; the upload keeps 10.
        result = upload(store, raw, estimate=None)
        assert result.resumed_bytes == 20 * MiB
        store.rename(result.partial, PATH)
        stored = b"".join(store.read_chunks(PATH))
    assert hashlib.sha256(stored).hexdigest() == result.sha256
    head = rgw.client().head_object(Bucket=bucket, Key=f"lab/{PATH}")
    parts = -(-len(stored) // (10 * MiB))
    assert head["ETag"].strip('"').endswith(f"-{parts}") and parts == 4


def test_parts_larger_than_a_checkpoint_chunk_resume_from_the_last_part_end(
    rgw: Rgw, bucket: str
) -> None:
    """20 MiB parts, checkpoints every 10 MiB: the one at 30 MiB lies inside part 2. Killed
    after part 2 was stored but before the checkpoint at its end (40 MiB) was written,
    the next run goes back to 20 MiB, where part 1 ends, not to the start."""
    raw = random.Random(23).randbytes(50 * MiB) + END
    first = CutStore(bucket, "lab", endpoint_url=rgw.endpoint, region=rgw.region, timeout=10)
    first.cut_after = 45 * MiB
    with closing(first), pytest.raises(StoreError, match="cut"):
        upload(first, raw, estimate=100 * GiB)  # x1.25 past 10 MiB parts' 78 GiB: 20 MiB
    with closing(open_s3(rgw, bucket)) as store:
        (kept,) = [e for e in store.listdir("tank~home") if ".ckpt." not in e.name]
        partial = f"tank~home/{kept.name}"
        assert kept.size == 40 * MiB  # parts 1 and 2
        recorded = parse_checkpoints(b"".join(store.read_chunks(checkpoint_name(partial))))
        assert recorded is not None and len(recorded.hashes) >= 4
        with store.open_append(checkpoint_name(partial), recorded.ends[3]):
            pass  # the checkpoints at 10, 20 and 30 MiB: the one at 40 was never written
        result = upload(store, raw, estimate=None)
        assert result.resumed_bytes == 20 * MiB
        store.rename(result.partial, PATH)
        stored = b"".join(store.read_chunks(PATH))
    assert hashlib.sha256(stored).hexdigest() == result.sha256
    head = rgw.client().head_object(Bucket=bucket, Key=f"lab/{PATH}")
    assert head["ETag"].strip('"').endswith("-3")  # 20, 20 and the rest
