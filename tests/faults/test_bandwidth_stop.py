"""A stop (Ctrl-C, SIGTERM, a Cancel) while the bandwidth limiter holds an upload back.

The signal handlers and Prefect's cancellation all end in the stop switch
(`cancel.request`, covered end to end by test_signals.py and test_cancel.py);
here the switch is thrown while the writer waits for its turn at a low limit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.faults import leftovers, stored_files
from tests.support.services import Pool
from zfs_offsite import cancel
from zfs_offsite.errors import Cancelled
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def stop_switch() -> Iterator[None]:
    cancel.reset()
    yield
    cancel.reset()


def test_a_stop_ends_the_wait_for_bandwidth(
    big_member: Pool,
    sftp_dir: Path,
    settings_for: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    stop_switch: None,
) -> None:
    # The first 1 MiB chunk alone waits about 50 s (1 MiB at 20 kB/s) for its turn at this limit.
    monkeypatch.setenv("ZFS_OFFSITE_TARGET__BANDWIDTH", "20kB/s")
    settings = settings_for(big_member, sftp_dir)
    (member,) = discover_members(settings)
    caught: list[BaseException] = []

    def run() -> None:
        try:
            backup_member(settings, member)
        except BaseException as exc:
            caught.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 60
    while not list(sftp_dir.rglob("*.partial")):
        assert worker.is_alive() and time.monotonic() < deadline, caught
        time.sleep(0.1)
    time.sleep(2)  # well inside the limiter's wait
    assert worker.is_alive()
    cancel.request("SIGTERM")
    asked = time.monotonic()
    worker.join(timeout=30)
    stopped_after = time.monotonic() - asked
    assert not worker.is_alive()
    assert stopped_after < 3, f"took {stopped_after:.1f} s to stop"
    assert len(caught) == 1 and isinstance(caught[0], Cancelled), caught
    assert str(caught[0]) == "stopped by SIGTERM"
    assert stored_files(sftp_dir) == []
    assert leftovers(sftp_dir) == []
