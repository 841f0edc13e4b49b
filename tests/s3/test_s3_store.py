"""The s3:// store's read side on the real RGW: listing, HEAD, ranged reads, and its errors.

Credentials reach the store only through the AWS chain (here the environment or
a shared credentials file), as they will in production. Each failure the design
names (wrong credentials, a missing bucket, the endpoint down, a skewed clock)
is one typed line naming the fix.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.rgw import Rgw
from zfs_offsite.errors import PermanentError, StoreError, TransientError
from zfs_offsite.remote import s3 as s3_module
from zfs_offsite.remote.s3 import S3Store
from zfs_offsite.remote.store import read_small_file

MiB = 1 << 20
SECRET_FIX = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or target.s3.profile)"


def open_s3(rgw: Rgw, bucket: str, prefix: str = "lab", **kwargs: object) -> S3Store:
    options: dict[str, object] = {"endpoint_url": rgw.endpoint, "region": rgw.region}
    options.update(kwargs)
    return S3Store(bucket, prefix, timeout=10, **options)  # type: ignore[arg-type]


@pytest.fixture
def archive(rgw: Rgw, bucket: str, aws_env: None) -> Iterator[dict[str, bytes]]:
    """A few objects in the file layout under `lab/`, and one outside it."""
    objects = {
        "lab/.zfs-offsite-archive.json": b'{"format": 1}\n',
        "lab/tank~home/tank~home@a.zfs.zst": os.urandom(3 * MiB + 5),
        "lab/tank~home/tank~home@a.zfs.zst.sha256": b"0" * 64 + b"\n",
        "lab/tank~home/empty": b"",
        "lab/tank~www/tank~www@a.zfs.zst": b"www",
        "other/tank~x/f": b"not ours",
    }
    s3 = rgw.client()
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    yield objects


def test_listing_stat_and_reads_see_the_file_layout(
    rgw: Rgw, bucket: str, archive: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_module, "PIECE", 1 * MiB)  # several pieces, read ahead
    with closing(open_s3(rgw, bucket)) as store:
        top = store.listdir("")
        assert [(e.name, e.is_dir) for e in top] == [
            (".zfs-offsite-archive.json", False),
            ("tank~home", True),
            ("tank~www", True),
        ]
        home = {e.name: e.size for e in store.listdir("tank~home")}
        assert home == {
            "empty": 0,
            "tank~home@a.zfs.zst": 3 * MiB + 5,
            "tank~home@a.zfs.zst.sha256": 65,
        }
        assert store.listdir("tank~none") == []

        entry = store.stat("tank~home/tank~home@a.zfs.zst")
        assert entry is not None and (entry.size, entry.is_dir) == (3 * MiB + 5, False)
        age = datetime.now(UTC).timestamp() - entry.mtime
        assert -300 < age < 300
        directory = store.stat("tank~home")
        assert directory is not None and directory.is_dir
        root = store.stat("")
        assert root is not None and root.is_dir
        assert store.stat("tank~home/missing") is None
        assert store.stat("tank~none") is None

        body = archive["lab/tank~home/tank~home@a.zfs.zst"]
        asked: list[str] = []
        store._client.meta.events.register(
            "before-call.s3", lambda model, **_: asked.append(model.name)
        )
        chunks = list(store.read_chunks("tank~home/tank~home@a.zfs.zst"))
        assert asked == ["GetObject"]  # one streaming GET, as `rclone cat`: no HEAD, no ranges
        assert [len(c) for c in chunks] == [MiB, MiB, MiB, 5]
        assert hashlib.sha256(b"".join(chunks)).digest() == hashlib.sha256(body).digest()
        assert list(store.read_chunks("tank~home/empty")) == []
        assert read_small_file(store, "tank~home/tank~home@a.zfs.zst.sha256") == b"0" * 64 + b"\n"
        with pytest.raises(FileNotFoundError):
            list(store.read_chunks("tank~home/missing"))
        with pytest.raises(FileNotFoundError):
            store.open_read("tank~home/missing")
        assert store.space("") is None


def test_small_answers_come_at_once_not_after_a_delayed_ack(
    rgw: Rgw, bucket: str, archive: dict[str, bytes]
) -> None:
    """RGW sends an answer's headers and body in two writes with Nagle on: without
    TCP_QUICKACK on our side each listing or small GET after the first on a connection
    waited for Linux's delayed ACK (>= 40 ms each; measured 44-52 ms, against 2 ms)."""
    reads, listings = [], []
    with closing(open_s3(rgw, bucket)) as store:
        store.listdir("")  # the connection made, and past its first exchanges
        store.listdir("tank~home")
        for _ in range(6):
            started = time.perf_counter()
            sidecar = read_small_file(store, "tank~home/tank~home@a.zfs.zst.sha256")
            reads.append(time.perf_counter() - started)
            assert sidecar == b"0" * 64 + b"\n"
            started = time.perf_counter()
            assert "tank~home@a.zfs.zst" in {e.name for e in store.listdir("tank~home")}
            listings.append(time.perf_counter() - started)  # objects, then uploads: 2 requests
    # The fastest of six (load only slows some), each well under one 40 ms wait per request.
    shown = [f"{s * 1000:.0f} ms" for s in reads + listings]
    assert min(reads) < 0.03 and min(listings) < 0.06, shown


def test_an_empty_prefix_is_the_top_of_the_bucket(
    rgw: Rgw, bucket: str, archive: dict[str, bytes]
) -> None:
    with closing(open_s3(rgw, bucket, prefix="")) as store:
        assert [e.name for e in store.listdir("")] == ["lab", "other"]
        assert [e.name for e in store.listdir("lab/tank~www")] == ["tank~www@a.zfs.zst"]
        assert store.stat("") is not None


def test_a_prefix_with_nothing_under_it_is_a_missing_root(
    rgw: Rgw, bucket: str, archive: dict[str, bytes]
) -> None:
    with closing(open_s3(rgw, bucket, prefix="nothing-here")) as store:
        assert store.stat("") is None
        assert store.listdir("") == []


def one_line_error(store: S3Store, kind: type[Exception], says: str) -> str:
    """Both a listing and a HEAD fail with the same one line (HEAD has no body to say why)."""
    lines = []
    for read in (lambda: store.listdir(""), lambda: store.stat(".zfs-offsite-archive.json")):
        with pytest.raises(kind) as caught:
            read()
        lines.append(str(caught.value))
    for line in lines:
        assert says in line and "\n" not in line
    return lines[0]


@pytest.mark.usefixtures("archive")
def test_an_unknown_access_key_is_permanent_and_names_the_fix(
    rgw: Rgw, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANOSUCHKEY0000000")
    store = open_s3(rgw, bucket)
    line = one_line_error(store, PermanentError, "does not know the access key")
    assert SECRET_FIX in line and rgw.secret_key not in line
    store.close()


@pytest.mark.usefixtures("archive")
def test_a_wrong_secret_is_permanent_and_names_the_fix(
    rgw: Rgw, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "0" * 40)
    store = open_s3(rgw, bucket)
    line = one_line_error(store, PermanentError, "(SignatureDoesNotMatch)")
    assert SECRET_FIX in line and "0" * 40 not in line
    store.close()


@pytest.mark.usefixtures("aws_env")
def test_a_missing_bucket_is_refused_never_created(rgw: Rgw) -> None:
    store = open_s3(rgw, "zfs-offsite-no-such-bucket")
    one_line_error(
        store, PermanentError, "the bucket 'zfs-offsite-no-such-bucket' does not exist at"
    )
    store.close()
    names = [b.get("Name") for b in rgw.client().list_buckets().get("Buckets", [])]
    assert "zfs-offsite-no-such-bucket" not in names


@pytest.mark.usefixtures("aws_env")
def test_the_endpoint_down_is_transient_and_names_the_setting(bucket: str) -> None:
    with socket.socket() as probe:  # a port nothing listens on: bound, then closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    store = S3Store(bucket, "lab", endpoint_url=endpoint, region="us-east-1", timeout=5)
    with pytest.raises(StoreError) as caught:
        store.listdir("")
    line = str(caught.value)
    assert isinstance(caught.value, TransientError) and caught.value.retryable
    assert f"cannot reach the S3 endpoint {endpoint}" in line
    assert "check target.s3.endpoint_url" in line and "\n" not in line
    store.close()


@pytest.mark.usefixtures("archive")
def test_a_skewed_clock_is_permanent_and_says_to_set_the_clock(
    rgw: Rgw, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This host's clock, as the request signature reads it, an hour behind; the
    # refusal is the real store's.
    import botocore.auth

    behind = datetime.now(UTC) - timedelta(hours=1)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: behind)
    store = open_s3(rgw, bucket)
    line = one_line_error(store, PermanentError, "(RequestTimeTooSkewed")
    assert "set the clock right (NTP" in line
    store.close()


def test_credentials_come_from_a_shared_file_and_profile(
    rgw: Rgw,
    bucket: str,
    archive: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[backup]\naws_access_key_id = {rgw.access_key}\n"
        f"aws_secret_access_key = {rgw.secret_key}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    store = open_s3(rgw, bucket, profile="backup")
    assert [e.name for e in store.listdir("tank~www")] == ["tank~www@a.zfs.zst"]
    store.close()
    with pytest.raises(PermanentError, match=r"target\.s3\.profile 'nosuch' is in neither"):
        open_s3(rgw, bucket, profile="nosuch")
    nothing = open_s3(rgw, bucket)  # no keys in the environment, no default profile
    with pytest.raises(PermanentError, match="no S3 credentials were found"):
        nothing.listdir("")
    nothing.close()
