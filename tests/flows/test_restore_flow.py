"""The restore flow: the newest snapshot received from the archive, byte for byte."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from flows.restore import restore_flow
from tests.support.services import Pool
from tests.support.zfsdata import SNAP, guid, tree_digest
from zfs_offsite.errors import ConfigError

pytestmark = pytest.mark.integration


def test_restore_flow_receives_the_newest_snapshot(
    backed_up: tuple[Pool, Path], pool_factory: Callable[[], Pool]
) -> None:
    pool, _ = backed_up
    target = pool_factory()
    result = restore_flow(member="alice", destination=f"{target.name}/alice")
    assert result.snapshot == SNAP
    assert guid(f"{target.name}/alice@{SNAP}") == guid(f"{pool.name}/elabfs-alice@{SNAP}")
    assert tree_digest(target.mountpoint / "alice") == tree_digest(pool.mountpoint / "elabfs-alice")
    state = restore_flow(member="nobody", destination=f"{target.name}/x", return_state=True)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, ConfigError)  # an unknown member is bad input, as for backup
    assert str(error).startswith("member nobody: no such member directory on the backup server")
