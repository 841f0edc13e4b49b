"""One writer per member on the real RGW: the lock object and its conditional PUTs.

Two runs at once, a holder that died or went silent, two takers of one dead lock,
a holder that lost its lock, a release: each judged by what the second run sees
(LockBusyError naming the holder, LockLostError, the lock object's holder).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import TypeVar

import pytest

from tests.support.rgw import Rgw
from zfs_offsite.archive.lock import LOCK_NAME, MemberLock, boot_id, pid_namespace
from zfs_offsite.errors import LockBusyError, LockLostError
from zfs_offsite.remote.s3 import S3Store
from zfs_offsite.remote.s3_lock import probe

REPO = Path(__file__).resolve().parents[2]
KEY = f"lab/tank~home/{LOCK_NAME}"
T = TypeVar("T")


@pytest.fixture
def store(rgw: Rgw, bucket: str, aws_env: None) -> Iterator[S3Store]:
    with closing(S3Store(bucket, "lab", endpoint_url=rgw.endpoint, region=rgw.region)) as s3:
        yield s3


def lock_of(store: S3Store, run: str, **limits: float) -> MemberLock:
    return MemberLock(store, "tank~home", purpose="backup", run=run, **limits)


def lock_object(rgw: Rgw, bucket: str) -> dict[str, object]:
    body = rgw.client().get_object(Bucket=bucket, Key=KEY)["Body"].read()
    found: dict[str, object] = json.loads(body)
    return found


def at_once(count: int, attempt: Callable[[int], MemberLock]) -> tuple[list, list]:
    """`count` threads take the lock together; the locks taken and the errors raised."""
    start = threading.Barrier(count)
    won: list[MemberLock] = []
    refused: list[BaseException] = []

    def one(number: int) -> None:
        start.wait()
        try:
            won.append(attempt(number))
        except BaseException as exc:
            refused.append(exc)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return won, refused


def test_two_runs_at_once_one_writes_the_other_is_told_who(
    rgw: Rgw, bucket: str, store: S3Store
) -> None:
    def take(number: int) -> MemberLock:
        lock = lock_of(store, f"night-{number}", wait_seconds=0)
        lock.acquire()
        return lock

    won, refused = at_once(2, take)
    assert len(won) == 1 and len(refused) == 1, refused
    assert isinstance(refused[0], LockBusyError)
    message = str(refused[0])
    assert "\n" not in message
    assert f"backup run {won[0].holder.run} on {won[0].holder.host}" in message
    assert lock_object(rgw, bucket)["token"] == won[0].holder.token
    won[0].release()


HOLD = """
import sys, time
from zfs_offsite.archive.lock import MemberLock
from zfs_offsite.remote.s3 import S3Store
store = S3Store(sys.argv[1], "lab", endpoint_url=sys.argv[2], region=sys.argv[3])
lock = MemberLock(store, "tank~home", purpose="backup", run="night-a", wait_seconds=0)
lock.acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_a_holder_killed_on_this_host_is_taken_over_at_once(
    rgw: Rgw, bucket: str, store: S3Store
) -> None:
    """Another process holds the lock: busy while it lives; SIGKILLed, the lock is free
    although it was never released and is not stale by age."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, bucket, rgw.endpoint, rgw.region],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(LockBusyError, match=f"backup run night-a on .* \\(pid {holder.pid}\\)"):
            lock_of(store, "night-b", wait_seconds=0).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    taker = lock_of(store, "night-b", wait_seconds=0, stale_seconds=3600)
    taker.acquire()
    assert lock_object(rgw, bucket)["token"] == taker.holder.token
    taker.release()


RACE = """
import sys
from zfs_offsite.archive.lock import MemberLock
from zfs_offsite.errors import LockBusyError
from zfs_offsite.remote.s3 import S3Store
store = S3Store(sys.argv[1], "lab", endpoint_url=sys.argv[2], region=sys.argv[3])
lock = MemberLock(store, "tank~home", purpose="backup", run=sys.argv[4], wait_seconds=0)
sys.stdin.readline()  # go!
try:
    lock.acquire()
except LockBusyError as busy:
    print("busy:", busy, flush=True)
else:
    print("held", flush=True)
    sys.stdin.readline()  # hold until told
    lock.release()
"""


def test_two_processes_at_once_one_holds_the_lock(rgw: Rgw, bucket: str, store: S3Store) -> None:
    """Two runs started together, as two processes: the second is told who writes."""
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, bucket, rgw.endpoint, rgw.region, f"night-{n}"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in (1, 2)
    ]
    try:
        time.sleep(2)  # both have imported and connected
        for run in runs:
            assert run.stdin is not None
            run.stdin.write("\n")
            run.stdin.flush()
        said = {}
        for n, run in enumerate(runs, start=1):
            assert run.stdout is not None
            said[n] = run.stdout.readline().strip()
        held = [n for n, line in said.items() if line == "held"]
        assert len(held) == 1, said
        other = 3 - held[0]
        assert said[other].startswith(f"busy: member tank~home: backup run night-{held[0]} on ")
        assert lock_object(rgw, bucket)["run"] == f"night-{held[0]}"
    finally:
        for run in runs:
            if run.stdin is not None:
                run.stdin.close()
            run.wait(timeout=30)
    assert lock_object(rgw, bucket)["state"] == "released"


def dead_holder(rgw: Rgw, bucket: str) -> None:
    """A lock left by a process of this host that is gone (its pid reaped)."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    holder = {
        "host": os.uname().nodename,
        "pid": gone.pid,
        "boot_id": boot_id(),
        "run": "night-gone",
        "purpose": "backup",
        "started": "2026-01-01T00:00:00+00:00",
        "token": "feedfacefeedface",
        "pid_ns": pid_namespace(),
    }
    rgw.client().put_object(Bucket=bucket, Key=KEY, Body=json.dumps(holder).encode())


def test_of_four_takers_of_a_dead_lock_only_one_wins(rgw: Rgw, bucket: str, store: S3Store) -> None:
    dead_holder(rgw, bucket)

    def take(number: int) -> MemberLock:
        lock = lock_of(store, f"taker-{number}", wait_seconds=0, stale_seconds=3600)
        lock.acquire()
        return lock

    won, refused = at_once(4, take)
    assert len(won) == 1, [str(e) for e in refused]
    assert all(isinstance(e, LockBusyError) for e in refused), refused
    assert all(f"backup run {won[0].holder.run} on" in str(e) for e in refused)
    assert lock_object(rgw, bucket)["token"] == won[0].holder.token
    won[0].release()


def other_hosts_lock(rgw: Rgw, bucket: str) -> None:
    holder = {"host": "w2-nas2", "pid": 4242, "boot_id": "b", "run": "night-nas2",
              "purpose": "backup", "started": "2026-01-01", "token": "t0ken"}  # fmt: skip
    rgw.client().put_object(Bucket=bucket, Key=KEY, Body=json.dumps(holder).encode())


def test_another_hosts_lock_is_taken_over_only_when_stale_by_the_servers_clock(
    rgw: Rgw, bucket: str, store: S3Store
) -> None:
    other_hosts_lock(rgw, bucket)
    with pytest.raises(LockBusyError, match="backup run night-nas2 on w2-nas2"):
        lock_of(store, "night-b", wait_seconds=0, stale_seconds=3).acquire()
    assert lock_object(rgw, bucket)["token"] == "t0ken"
    time.sleep(5)  # Last-Modified and Date have 1 s steps
    taker = lock_of(store, "night-b", wait_seconds=0, stale_seconds=3)
    taker.acquire()
    assert lock_object(rgw, bucket)["token"] == taker.holder.token
    taker.release()


def test_a_holder_whose_lock_was_taken_over_commits_nothing(
    rgw: Rgw, bucket: str, store: S3Store
) -> None:
    first = lock_of(store, "night-a", wait_seconds=0)
    first.acquire()
    first._last_refresh = 0.0  # its heartbeat is due: a CAS with its own ETag works
    first.refresh()
    first.verify()
    assert lock_object(rgw, bucket)["beat"] == 1
    time.sleep(3)  # then it goes silent (a hung NFS, a stopped VM) past stale_seconds
    taker = lock_of(store, "night-b", wait_seconds=0, stale_seconds=1)
    taker.acquire()
    first._last_refresh = 0.0
    with pytest.raises(LockLostError, match="nothing was committed"):
        first.refresh()
    with pytest.raises(LockLostError, match="taken over by another run"):
        first.verify()
    assert lock_object(rgw, bucket)["token"] == taker.holder.token  # its heartbeat wrote nothing
    taker.verify()
    taker.release()


def test_a_released_lock_stays_as_released_and_the_next_run_takes_it_at_once(
    rgw: Rgw, bucket: str, store: S3Store
) -> None:
    with lock_of(store, "night-a", wait_seconds=0) as first:
        pass
    left = lock_object(rgw, bucket)
    assert (left["state"], left["token"]) == ("released", first.holder.token)
    started = time.monotonic()
    second = lock_of(store, "night-b", wait_seconds=0, stale_seconds=3600)
    second.acquire()
    assert time.monotonic() - started < 10
    assert lock_object(rgw, bucket)["token"] == second.holder.token
    second.release()


def call(doing: str, action: Callable[[], T]) -> T:
    return action()


def test_the_probe_finds_rgw_16_honours_the_unquoted_etag(
    rgw: Rgw, bucket: str, store: S3Store
) -> None:
    found = probe(rgw.client(), bucket, "lab", call, f"s3://{bucket}/lab")
    assert (found.etag_form, found.refusal) == ("unquoted", "")
    assert "Contents" not in rgw.client().list_objects_v2(Bucket=bucket)  # the probe is gone
