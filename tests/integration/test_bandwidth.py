"""`target.bandwidth` measured on the link: a minute-long upload through a counting proxy.

Real zfs-fuse, the private sshd, both SFTP clients; the data is random so the
stored bytes (what the limit counts) are about the raw stream. The rate is taken
at the proxy, outside the process, as a network admin would see it on the uplink.
Slow (a minute per limit): `-m "not slow"` leaves these out of a quick run.
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.counting_proxy import CountingProxy
from tests.support.services import SshServer, create_pool
from tests.support.zfsdata import SNAP, create_member, snapshot
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.report.run_report import MemberOutcome, row
from zfs_offsite.settings import Settings
from zfs_offsite.stream.progress import StreamProgress

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SECONDS = 60
TOLERANCE = 0.05


def write_random(path: Path, size: int, seed: int) -> None:
    """`size` incompressible bytes, written in pieces so memory stays small."""
    rng = random.Random(seed)
    with path.open("wb") as handle:
        for offset in range(0, size, 8 << 20):
            handle.write(rng.randbytes(min(8 << 20, size - offset)))


@pytest.mark.parametrize(
    ("limit", "rate", "client"),
    [("2MB/s", 2e6, "openssh"), ("5MB/s", 5e6, "paramiko")],
)
def test_a_minute_long_upload_runs_at_the_limit(
    zfs_fuse: None,
    sshd: SshServer,
    sftp_dir: Path,
    settings_for: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    limit: str,
    rate: float,
    client: str,
) -> None:
    size = int(rate * (SECONDS + 2))  # a little over a minute at the limit
    pool = create_pool(tmp_path, size_mb=size // 1_000_000 * 2 + 128)
    proxy = CountingProxy(sshd.port)
    try:
        dataset = create_member(pool.name, "erin")
        write_random(pool.mountpoint / "elabfs-erin" / "random.bin", size, seed=int(rate))
        snapshot(dataset, SNAP)
        known = tmp_path / "known_hosts"
        known.write_text(sshd.known_hosts_line(proxy.port))
        monkeypatch.setenv("ZFS_OFFSITE_TARGET__BANDWIDTH", limit)
        settings = settings_for(pool, sftp_dir, port=proxy.port, known_hosts=known, client=client)
        (member,) = discover_members(settings)
        reports: list[StreamProgress] = []
        result = backup_member(settings, member, progress=reports.append)
    finally:
        proxy.close()
        pool.destroy()
    assert result.stream is not None and result.stream.stored_bytes >= size
    measured = proxy.steady()
    print(f"{limit} over {client}: {measured} at the proxy; {proxy.upward()} bytes up in all")
    assert measured.seconds >= SECONDS - 2
    assert abs(measured.rate - rate) <= TOLERANCE * rate, f"{measured} against {limit}"
    # The stored file is whole and checks out, as `sha256sum -c` on the server says.
    check = subprocess.run(
        ["sha256sum", "-c", f"elabfs-erin@{SNAP}.zst.sha256"],
        cwd=sftp_dir / "erin",
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    # The progress showed the limit and the rate achieved; the report row shows both.
    late = [r for r in reports if r.stored_bytes > size // 2]
    assert late and all(r.limit == f"{rate / 1e6:g} MB/s" for r in reports)
    assert late[-1].rate is not None and abs(late[-1].rate - rate) <= TOLERANCE * rate
    shown = row(MemberOutcome("erin", result=result))
    assert shown["bandwidth_limit"] == f"{rate / 1e6:g} MB/s"
    assert abs(float(str(shown["stored_mb_per_s"])) - rate / 1e6) <= TOLERANCE * rate / 1e6
