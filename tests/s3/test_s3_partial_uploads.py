"""A bucket's unfinished uploads: prune keeps the resumable one, aborts the abandoned one,
and the next backup resumes the kept one at the bandwidth limit, reporting its progress.

Real zfs-fuse and RGW. Member `erin` holds DATA_MIB of random data (the stored
object is about the stream's size). A backup process, held to a bandwidth limit
so that it is still sending, is SIGKILLed once its checkpoint object records the
first checkpoint (64 MiB): its multipart upload is resumable. Beside it an
abandoned upload of another file, one part and no checkpoint, as a run killed
before its first checkpoint leaves. Prune is run as on the night after (its clock
25 h on) and a week later (a dry run); the backup that follows is timed through
its own progress reports, which are what the progress bar draws.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cli.progress_bars import link_text
from tests.s3.test_s3_resume import (
    FILE,
    KEY,
    PREFIX,
    check_the_object,
    checkpoints_recorded,
    keys,
    killed_after_checkpoints,
    settings,
    uploads,
)
from tests.support.rgw import Rgw
from tests.support.services import Pool, create_pool
from tests.support.zfsdata import random_member
from zfs_offsite.connect import open_store
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.jobs.prune import prune_member
from zfs_offsite.plan.backup import Action
from zfs_offsite.report.run_report import MemberOutcome, prune_file_rows, row
from zfs_offsite.stream.progress import StreamProgress

pytestmark = pytest.mark.usefixtures("aws_env")

MiB = 1 << 20
DATA_MIB = 96  # one checkpoint (64 MiB) and 32 MiB more
CHECKPOINT = 64 * MiB
LIMIT, RATE = "8MB/s", 8e6
ABANDONED_KEY = f"{PREFIX}/erin/elabfs-erin@auto-20190801.0200-1w.zst"


@pytest.fixture(scope="module")
def pool(zfs_fuse: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    """A sparse pool whose member holds DATA_MIB of random data, snapshotted."""
    pool = create_pool(tmp_path_factory.mktemp("s10j-partial"), prefix="s10jp", size_mb=512)
    random_member(pool.name, pool.mountpoint, "erin", DATA_MIB)
    yield pool
    pool.destroy()


def killed_after_a_checkpoint(pool: Pool, rgw: Rgw, bucket: str) -> str:
    """A backup process (limited to 16 MB/s, so it is still sending) SIGKILLed once its
    checkpoint object holds a checkpoint; the UploadId it leaves."""
    return killed_after_checkpoints(pool, rgw, bucket, 1, ZFS_OFFSITE_TARGET__BANDWIDTH="16MB/s")


def abandoned_upload(rgw: Rgw, bucket: str) -> str:
    """An upload of another file with one part and no checkpoint object."""
    client = rgw.client()
    upload = client.create_multipart_upload(Bucket=bucket, Key=ABANDONED_KEY)["UploadId"]
    client.upload_part(
        Bucket=bucket, Key=ABANDONED_KEY, UploadId=upload, PartNumber=1, Body=os.urandom(MiB)
    )
    return str(upload)


def all_uploads(rgw: Rgw, bucket: str) -> set[str]:
    found = rgw.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return {u["UploadId"] for u in found}


def test_prune_keeps_the_resumable_upload_aborts_the_abandoned_one_then_it_resumes_paced(
    pool: Pool, rgw: Rgw, bucket: str, tmp_path: Path
) -> None:
    resumable = killed_after_a_checkpoint(pool, rgw, bucket)
    abandoned = abandoned_upload(rgw, bucket)
    assert all_uploads(rgw, bucket) == {resumable, abandoned}
    config = settings(pool, rgw, bucket)

    # The night after: the abandoned upload is past retention.stale_partial_hours (24 h).
    with closing(open_store(config.target)) as store:
        plan = prune_member(config, store, "erin", now=datetime.now(UTC) + timedelta(hours=25))
    decisions = {str(r["file"]): r["decision"] for r in prune_file_rows(plan, dry_run=False)}
    kept = {n: d for n, d in decisions.items() if n.startswith(FILE + ".")}
    assert sorted(n.endswith(".ckpt.partial") for n in kept) == [False, True], decisions
    assert set(kept.values()) == {
        "left alone: partial upload with checkpoints, kept 7 days for a resume"
    }
    (gone,) = [n for n in decisions if n.startswith(ABANDONED_KEY.rsplit("/", 1)[1] + ".")]
    assert decisions[gone] == "deleted (stale partial upload)"
    assert all_uploads(rgw, bucket) == {resumable}  # the abandoned one aborted on the store
    assert checkpoints_recorded(rgw, bucket) >= 1  # the checkpoint object kept with it

    # A week on, the resumable one too is past its window (a dry run: nothing deleted).
    with closing(open_store(config.target)) as store:
        later = prune_member(
            config, store, "erin", dry_run=True, now=datetime.now(UTC) + timedelta(days=8)
        )
    late = {str(r["file"]): r["decision"] for r in prune_file_rows(later, dry_run=True)}
    assert {late[n] for n in kept} == {
        "would delete (partial upload with checkpoints, older than 7 days)"
    }
    assert all_uploads(rgw, bucket) == {resumable}

    # The next backup resumes the kept upload, sending the rest at the limit.
    paced = config.model_copy(
        update={"target": config.target.model_copy(update={"bandwidth": LIMIT})}
    )
    (member,) = discover_members(paced)
    reports: list[tuple[float, StreamProgress]] = []
    result = backup_member(paced, member, progress=lambda r: reports.append((time.monotonic(), r)))
    assert result.action is Action.FULL and result.stream is not None
    assert result.stream.resumed_bytes == CHECKPOINT
    assert uploads(rgw, bucket) == [] and all_uploads(rgw, bucket) == set()
    assert not [k for k in keys(rgw, bucket) if k.endswith(".partial")]
    size = check_the_object(rgw, bucket, pool, tmp_path)  # sha256 and `zfs receive` agree
    assert KEY.endswith(FILE) and size >= DATA_MIB * MiB

    # Progress, as the bar shows it: the check of the earlier upload, then the rate sent
    # against the limit, bytes only growing to the end.
    shown = [r for _, r in reports]
    checking = [r for r in shown if r.checking]
    assert checking and link_text(checking[-1]).startswith("checking the earlier upload: ")
    assert all(r.limit == "8 MB/s" for r in shown)
    stored = [r.stored_bytes for r in shown]
    assert stored == sorted(stored)
    assert stored[-1] >= 0.99 * result.stream.stored_bytes  # the bar reached the end
    sending = [(t, r) for t, r in reports if not r.checking]
    late_report = [r for _, r in sending if r.sent_bytes > 16 * MiB][-1]
    text = link_text(late_report)
    assert text.endswith(" MB/s sent, limit 8 MB/s"), text
    assert float(text.split()[0]) <= 1.15 * RATE / 1e6, text

    # The rate itself, from the reports' clock: never above the limit (with a margin for
    # the bucket's 0.1 s burst and the report's timing); far below only on a stalled box.
    began = max(t for t, r in reports if r.checking)
    sent = result.stream.stored_bytes - result.stream.resumed_bytes
    seconds = sending[-1][0] - began
    print(f"sent {sent} bytes in {seconds:.1f} s = {sent / seconds / 1e6:.2f} MB/s, {LIMIT}")
    assert sent >= 30 * MiB
    assert sent / seconds <= 1.15 * RATE
    assert row(MemberOutcome("erin", result=result))["bandwidth_limit"] == "8 MB/s"
