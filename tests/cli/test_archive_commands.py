"""`init`, `adopt`, and what plan, status and verify say about a root that is not an archive."""

from __future__ import annotations

import json
import stat
from contextlib import closing
from pathlib import Path

import pytest

from tests.support.cli import Cli
from tests.support.services import Pool
from tests.support.zfsdata import SNAP, gzip_send
from zfs_offsite.archive.identity import MARKER_NAME, ArchiveRootError
from zfs_offsite.jobs.restore import download_chain
from zfs_offsite.remote.local import LocalStore

pytestmark = pytest.mark.integration


def at(cli: Cli, root: Path) -> Cli:
    return cli.with_env(ZFS_OFFSITE_TARGET__URL=f"file://{root}")


def test_init_makes_a_private_archive_once(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "disk" / "archive"
    done = at(cli, root)("init")
    assert done.code == 0, done.output
    marker = json.loads((root / MARKER_NAME).read_text())
    assert marker["how"] == "init" and marker["archive_id"] in done.stderr
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / MARKER_NAME).stat().st_mode) == 0o600
    again = at(cli, root)("init")
    assert again.code == 1
    assert again.err_lines[-1] == (
        f"error: archive root file://{root} is an archive already: nothing to do"
    )


def test_adopt_of_a_missing_root_asks_whether_the_disk_is_mounted(cli: Cli, tmp_path: Path) -> None:
    done = at(cli, tmp_path / "gone")("adopt")
    assert done.code == 1
    assert done.err_lines[-1] == (
        f"error: archive root file://{tmp_path / 'gone'} is missing: is the disk mounted?"
    )
    assert not (tmp_path / "gone").exists()


def test_a_bad_umask_is_one_line_and_exit_2(cli: Cli, tmp_path: Path) -> None:
    done = at(cli, tmp_path / "a")("init", ZFS_OFFSITE_TARGET__UMASK="0o700")
    assert done.code == 2
    errors = [line for line in done.err_lines if line.startswith("error:")]
    assert len(errors) == 1 and "setting target.umask" in errors[0], done.output
    assert not (tmp_path / "a").exists()


def test_plan_plans_on_an_unadopted_seed_archive_and_says_adopt(
    cli: Cli, module_pool: Pool, tmp_path: Path
) -> None:
    root = tmp_path / "seed"
    (root / "alice").mkdir(parents=True)
    gzip_send(
        ["zfs", "send", f"{module_pool.name}/elabfs-alice@{SNAP}"],
        root / "alice" / f"elabfs-alice@{SNAP}.gz",
    )
    done = at(cli, root)("plan", "--json")
    assert done.code == 0, done.output
    plan = json.loads(done.stdout)
    alice = next(m for m in plan["members"] if m["member"] == "alice")
    assert alice["action"] == "up to date"  # the seed's file counts, by name
    assert "zfs-offsite adopt" in plan["note"]
    assert not (root / MARKER_NAME).exists()  # plan writes nothing
    adopted = at(cli, root)("adopt")
    assert adopted.code == 0, adopted.output
    assert json.loads(at(cli, root)("plan", "--json").stdout)["note"] is None


def test_status_and_verify_on_a_missing_root_say_so(cli: Cli, tmp_path: Path) -> None:
    gone = at(cli, tmp_path / "usb" / "archive")
    status = gone("status")
    assert status.code == 2
    assert (
        f"archive root file://{tmp_path}/usb/archive is missing: is the disk mounted?"
        in (status.err_lines[-1])
    )
    verify = gone("verify")
    assert verify.code == 1, verify.output
    assert "is missing: is the disk mounted?" in verify.err_lines[-1]
    assert not (tmp_path / "usb").exists()


def test_restore_from_an_empty_or_missing_root_asks_whether_the_disk_is_mounted(
    cli: Cli, tmp_path: Path
) -> None:
    """The mount point of a disk that is not mounted: not "no such member directory … check
    the name" (the name is right), but the question about the disk, for every restore mode
    (they share the chain's planning)."""
    empty = tmp_path / "usb"
    empty.mkdir()
    done = at(cli, empty)("restore", "alice", "tank/restore/alice")
    assert done.code == 1, done.output
    assert done.err_lines[-1].startswith(
        f"error: restore failed: archive root file://{empty} is empty: is the disk mounted?"
    ), done.output
    assert "no such member directory" not in done.output
    for root, what in ((empty, "empty"), (tmp_path / "gone", "missing")):
        with closing(LocalStore(root)) as store, pytest.raises(ArchiveRootError) as caught:
            download_chain(store, "alice", tmp_path / "chain")
        assert str(caught.value).startswith(
            f"archive root file://{root} is {what}: is the disk mounted?"
        )
    assert not (tmp_path / "gone").exists() and not (tmp_path / "chain").exists()
