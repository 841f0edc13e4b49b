"""bench.throughput's own plumbing: the stream size it divides by, and its rounds note."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from bench.throughput import print_table, send_size
from tests.support.services import Pool
from tests.support.zfsdata import create_member, snapshot, write_member_data

pytestmark = pytest.mark.integration


def test_send_size_counts_the_stream_whatever_the_snapshot_is_called(
    pool_factory: Callable[[], Pool],
) -> None:
    """A snapshot name with a space (valid in ZFS) reaches `zfs send` as one argument."""
    pool = pool_factory()
    dataset = create_member(pool.name, "bench")
    write_member_data(pool.mountpoint / "elabfs-bench", 1)
    snapshot(dataset, "bench run")
    stream = subprocess.run(["zfs", "send", f"{dataset}@bench run"], capture_output=True)
    assert stream.returncode == 0 and len(stream.stdout) > 0
    assert send_size(f"{dataset}@bench run") == len(stream.stdout)
    with pytest.raises(subprocess.CalledProcessError):
        send_size(f"{dataset}@no-such-snapshot")


@pytest.mark.parametrize(("rounds", "marked"), [(1, True), (2, True), (3, False)])
def test_the_table_says_when_it_has_too_few_rounds_for_medians(
    rounds: int, marked: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    row = {"mb_s": 100.0, "cpu_s_per_gb": 2.0, "cpu_s_per_gb_with_zfs": 3.0}
    print_table(2**30, {"ours zstd (sftp)": row | {"ratio": 2.0, "rss_mb": 50.0}}, {}, rounds)
    head = capsys.readouterr().out.splitlines()[0]
    assert head.startswith(f"stream: 1024 MiB raw, {rounds} alternating rounds, medians")
    assert ("(fewer than 3: a quick check, not figures)" in head) is marked
