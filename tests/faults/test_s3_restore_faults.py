"""A restore from a bucket whose connection dies mid-GET, then `restore --resume` (real RGW).

Member `dave` has a full and an incremental in the bucket (the incremental spans
two ranged GETs). The restore runs through a TCP proxy that cuts every answer to a
read of the incremental a few MiB into its body, as a link that keeps dying would:
the restore fails with one line naming the object and the fix, the full is received,
and once the link is whole `restore --resume` receives only the incremental and the
result is the source's.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.test_s3_faults import PREFIX, cli_for
from tests.s3.test_s3_restore_verify_drill import assert_same_as_source
from tests.support.rgw import Rgw
from tests.support.services import Pool, create_pool
from tests.support.tcp_proxy import FaultyProxy
from tests.support.zfsdata import (
    SNAP,
    destroy_dataset,
    guid,
    populate_members,
    snapshot,
    write_member_data,
)
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.plan.backup import Action
from zfs_offsite.settings import load_settings

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("aws_env")]
MiB = 1 << 20
NEWEST = "auto-20190807.0200-1w"


@pytest.fixture(scope="module")
def pool(zfs_fuse: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    """`dave`: SNAP (1 MiB), then NEWEST with 12 MiB more of random data."""
    pool = create_pool(tmp_path_factory.mktemp("s10j-rf-pool"), prefix="s10jr")
    populate_members(pool.name, pool.mountpoint, ("dave",), megabytes=1)
    yield pool
    pool.destroy()


def back_up(pool: Pool, rgw: Rgw, bucket: str) -> None:
    """A night's backup straight to the RGW, by the core (the CLI's runs cost a minute here)."""
    settings = load_settings(
        source={"pool": pool.name},
        target={"url": f"s3://{bucket}/{PREFIX}", "s3": {"endpoint_url": rgw.endpoint}},
    )
    (member,) = discover_members(settings)
    assert backup_member(settings, member).action in (Action.FULL, Action.INCREMENTAL)


def test_a_restore_cut_mid_get_fails_in_one_line_and_resume_completes_it(
    rgw: Rgw, bucket: str, pool: Pool, tmp_path: Path
) -> None:
    back_up(pool, rgw, bucket)  # the full
    write_member_data(pool.mountpoint / "elabfs-dave", 7, megabytes=12)
    snapshot(f"{pool.name}/elabfs-dave", NEWEST)
    back_up(pool, rgw, bucket)  # the incremental: 12 MiB, two ranged GETs

    proxy = FaultyProxy(int(rgw.endpoint.rsplit(":", 1)[1]))
    destination = f"{pool.name}/s10j-restored"
    try:
        cli = cli_for(rgw, bucket, pool, proxy.url, tmp_path / "proxied")
        proxy.cut_reads(".to.", after=3 * MiB)  # the incremental's body, every time
        cut = cli("restore", "dave", destination)
        assert cut.code == 1, cut.output[-3000:]
        assert "Traceback" not in cut.output
        assert proxy.cuts >= 1
        line = cut.err_lines[-1]
        assert line.startswith("error: restore failed: "), cut.output[-3000:]
        assert ".to." in line and "--resume" in line, line
        # The full was received; the incremental was not.
        assert guid(f"{destination}@{SNAP}") == guid(f"{pool.name}/elabfs-dave@{SNAP}")

        proxy.heal()
        resumed = cli("restore", "dave", destination, "--resume")
        assert resumed.code == 0, resumed.output[-3000:]
        assert f"restored dave@{NEWEST} into {destination} (1 file(s)" in resumed.stdout
        assert_same_as_source(pool, "dave", destination, NEWEST)
    finally:
        proxy.close()
        if subprocess.run(["zfs", "list", destination], capture_output=True).returncode == 0:
            destroy_dataset(destination)
