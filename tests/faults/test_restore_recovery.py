"""Restore recovery on real zfs-fuse and the real sshd: a corrupt `-I` link, resume, force.

Member `eve` has S1 (the full), then S2, S3 and S4 in ONE `-I S1 S4` file. S4
carries most of the data, so a file corrupt at 95 % of its length fails only
after `zfs receive` has committed S2 and S3 (each part of an `-I` stream is
committed when it is read; the held-back last MiB protects S4 alone).
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from tests.support.archive_files import sidecar
from tests.support.flow_runs import sftp_env
from tests.support.services import Pool, SshServer, ensure_test_user, run
from tests.support.zfsdata import create_member, destroy_dataset, guid, snapshot, write_member_data
from zfs_offsite.archive.model import ArchiveFile
from zfs_offsite.archive.names import parse_backup_name
from zfs_offsite.connect import open_runner, open_store
from zfs_offsite.errors import ConfigError, IntegrityError, PermanentError
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.jobs.restore import RestoreResult, restore_member
from zfs_offsite.plan.backup import Action
from zfs_offsite.plan.chains import RestorePoint
from zfs_offsite.settings import Settings
from zfs_offsite.zfs.commands import error_text
from zfs_offsite.zfs.destination import next_step, why_no_rollback
from zfs_offsite.zfs.model import Snapshot

pytestmark = pytest.mark.integration

S = [f"auto-2019080{d}.0200-1w" for d in range(6, 10)]
FULL = f"elabfs-eve@{S[0]}.zst"
LINK = f"elabfs-eve@{S[0]}.to.elabfs-eve@{S[3]}.zst"  # carries S2 and S3 as intermediates


@dataclass
class Archived:
    pool: Pool
    target: Pool  # restores go here
    archive: Path
    settings: Settings
    dataset: str

    @property
    def link(self) -> Path:
        return self.archive / "eve" / LINK


@pytest.fixture
def archived(
    pool_factory: Callable[[], Pool], sftp_dir: Path, settings_for: Callable[..., Settings]
) -> Archived:
    pool = pool_factory()
    dataset = create_member(pool.name, "eve")
    settings = settings_for(pool, sftp_dir)

    def backup() -> Action:
        (member,) = discover_members(settings)
        return backup_member(settings, member).action

    write_member_data(pool.mountpoint / "elabfs-eve", 0, 1)
    snapshot(dataset, S[0])
    assert backup() is Action.FULL
    for seed, megabytes in ((1, 1), (2, 1), (3, 4)):  # S4 holds most of the -I file
        write_member_data(pool.mountpoint / "elabfs-eve", seed, megabytes)
        snapshot(dataset, S[seed])
    assert backup() is Action.INCREMENTAL
    names = sorted(p.name for p in (sftp_dir / "eve").iterdir() if p.suffix == ".zst")
    assert names == sorted([FULL, LINK])
    return Archived(pool, pool_factory(), sftp_dir, settings, dataset)


def restore(a: Archived, destination: str, **kwargs: object) -> RestoreResult:
    with closing(open_runner(a.settings)) as runner, closing(open_store(a.settings.target)) as st:
        return restore_member(a.settings, runner, st, "eve", destination, **kwargs)  # type: ignore[arg-type]


def snapshots_of(dataset: str) -> list[str]:
    """What `zfs list -t snapshot` shows for the dataset, oldest first."""
    out = run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-s", "createtxg", "-r"])
    return [n.partition("@")[2] for n in out.stdout.split() if n.startswith(f"{dataset}@")]


def assert_same(a: Archived, restored: str, snapshots: list[str]) -> None:
    assert snapshots_of(restored) == snapshots
    for snap in snapshots:
        assert guid(f"{restored}@{snap}") == guid(f"{a.dataset}@{snap}")


def corrupt_at_95_percent(path: Path) -> bytes:
    """Flip bytes at 95 % of the file, as a failing disk would; returns the good bytes."""
    good = path.read_bytes()
    data = bytearray(good)
    at = len(data) * 95 // 100
    for i in range(at, at + 16):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    return good


def put_back(path: Path, good: bytes) -> None:
    """The operator replaces the damaged file with a sound copy (same bytes, same owner)."""
    path.write_bytes(good)
    user = ensure_test_user()
    os.chown(path, user.pw_uid, user.pw_gid)


@pytest.mark.parametrize("mode", ["local", "pull"])
def test_corrupt_i_link_is_rolled_back_and_resume_completes(
    archived: Archived, settings_for: Callable[..., Settings], mode: str
) -> None:
    a = archived
    if mode == "pull":  # every zfs command, the rollback too, runs over SSH
        a.settings = settings_for(a.pool, a.archive, pull=True)
    destination = f"{a.target.name}/eve"
    good = corrupt_at_95_percent(a.link)
    with pytest.raises(IntegrityError) as caught:
        restore(a, destination)
    # Without the rollback, S2 and S3 would be here (committed before the failure).
    assert snapshots_of(destination) == [S[0]]
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"eve/{LINK}: ")
    # The failure came after S2 and S3 were committed: the message names them, as rolled back.
    assert message.endswith(
        f"; zfs receive had committed {S[1]}, {S[2]} from this file: rolled back to {S[0]} "
        f"(zfs rollback -r), {destination} holds 1 snapshot: {S[0]}; replace {LINK} with a "
        f"sound copy, then restore {S[3]} again with --resume"
    )

    with pytest.raises(PermanentError, match=f"destination {destination} exists"):
        restore(a, destination)
    put_back(a.link, good)
    result = restore(a, destination, resume=True)
    assert [f.filename for f in result.files] == [LINK]
    assert result.guid == guid(f"{a.dataset}@{S[3]}")
    assert_same(a, destination, S)


def test_resume_rolls_back_what_an_unfinished_receive_left(
    archived: Archived, caplog: pytest.LogCaptureFixture
) -> None:
    """As after a killed restore or an older version: S2 and S3 of the link are there."""
    a = archived
    destination = f"{a.target.name}/eve"
    restore(a, destination, snapshot=S[0])
    raw = subprocess.run(
        ["zstd", "-d", "-c", "-q", str(a.link)], capture_output=True, check=True
    ).stdout
    cut = subprocess.run(
        ["zfs", "receive", "-F", destination], input=raw[: len(raw) * 95 // 100], check=False
    )
    assert cut.returncode != 0
    assert snapshots_of(destination) == S[:3]

    with caplog.at_level(logging.WARNING, logger="zfs_offsite.zfs.destination"):
        result = restore(a, destination, resume=True)
    assert f"rolled {destination} back to {S[0]}, destroying {S[1]}, {S[2]}" in caplog.text
    assert [f.filename for f in result.files] == [LINK]
    assert_same(a, destination, S)


def test_resume_leaves_foreign_snapshots_alone(archived: Archived) -> None:
    a = archived
    destination = f"{a.target.name}/eve"
    restore(a, destination, snapshot=S[0])
    # Creation times have whole seconds: on an idle machine the whole fixture fits in the
    # second S[3] was taken in. A person's snapshot comes later than that (in life: days).
    time.sleep(1.1)
    snapshot(destination, "mine")  # taken now, by a person: not part of the archive
    with pytest.raises(PermanentError) as caught:
        restore(a, destination, resume=True)
    assert str(caught.value) == (
        f"--resume: {destination} holds mine after {S[0]}, the last complete link, and they "
        f"are not snapshots that {LINK} carries: destroy them yourself (zfs rollback -r "
        f"{destination}@{S[0]}) if they may go, or restore into a new dataset"
    )
    assert snapshots_of(destination) == [S[0], "mine"]


def test_force_replaces_an_existing_destination(
    archived: Archived, caplog: pytest.LogCaptureFixture
) -> None:
    a = archived
    destination = f"{a.target.name}/eve"
    restore(a, destination, snapshot=S[0])
    (a.target.mountpoint / "eve" / "local.txt").write_text("changed after the restore")
    snapshot(destination, "mine")
    with pytest.raises(PermanentError, match=r"pass --resume .* or --force to replace it"):
        restore(a, destination)
    # `mine` is not in the archive: --force alone refuses (live data), the second flag allows.
    with pytest.raises(ConfigError, match=r"not in eve's archive \(mine\); add --destroy-live"):
        restore(a, destination, force=True)
    with caplog.at_level(logging.WARNING, logger="zfs_offsite.zfs.destination"):
        result = restore(a, destination, force=True, destroy_live=True)
    assert f"--force: destroyed {destination} and its 2 snapshot(s) ({S[0]}, mine)" in caplog.text
    assert [f.filename for f in result.files] == [FULL, LINK]
    assert_same(a, destination, S)
    assert not (a.target.mountpoint / "eve" / "local.txt").exists()


def test_force_refuses_a_destination_with_children_or_clones(archived: Archived) -> None:
    a = archived
    destination = f"{a.target.name}/eve"
    restore(a, destination, snapshot=S[0])
    run(["zfs", "create", "-o", "mountpoint=none", f"{destination}/child"])
    with pytest.raises(PermanentError) as caught:
        restore(a, destination, force=True)
    assert str(caught.value) == (
        f"--force replaces {destination} only when it has no child datasets; it has "
        f"{destination}/child: restore into a new dataset, or destroy them first"
    )
    assert isinstance(caught.value, ConfigError)  # refused before anything: exit 2, like live data
    destroy_dataset(f"{destination}/child")
    run(["zfs", "clone", f"{destination}@{S[0]}", f"{a.target.name}/copy"])
    with pytest.raises(PermanentError) as caught:
        restore(a, destination, force=True)
    assert str(caught.value) == (
        f"--force cannot replace {destination}: {a.target.name}/copy is a clone of "
        f"{destination}@{S[0]}: destroy or promote it, or restore into a new dataset"
    )
    assert isinstance(caught.value, ConfigError)
    assert snapshots_of(destination) == [S[0]]  # nothing destroyed


def test_missing_parents_are_created(archived: Archived, caplog: pytest.LogCaptureFixture) -> None:
    a = archived
    destination = f"{a.target.name}/restore/lab/eve"
    with caplog.at_level(logging.INFO, logger="zfs_offsite.zfs.destination"):
        restore(a, destination)
    assert f"created {a.target.name}/restore/lab (zfs create -p)" in caplog.text
    assert_same(a, destination, S)


def test_zfs_messages_keep_the_line_that_names_the_problem() -> None:
    stderr = (
        "cannot receive new filesystem stream: destination has snapshots (eg. tank/x@a)\n"
        "must destroy them to overwrite it\n"
    )
    assert error_text(stderr) == (
        "cannot receive new filesystem stream: destination has snapshots (eg. tank/x@a) "
        "must destroy them to overwrite it"
    )
    assert error_text("\n") == "(no message)"


def test_cli_exits_1_naming_the_file_then_resume_restores(
    archived: Archived, sshd: SshServer, prefect: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = archived
    for key, value in sftp_env(a.pool, a.archive, sshd).items():
        monkeypatch.setenv(key, value)
    destination = f"{a.target.name}/restore/eve"  # tank/restore does not exist yet
    good = corrupt_at_95_percent(a.link)
    failed = CliRunner().invoke(app, ["restore", "eve", destination])
    assert failed.exit_code == 1
    said = " ".join(failed.output.split())  # rich wraps long lines at the terminal width
    assert f"restore failed: eve/{LINK}: " in said
    assert f"committed {S[1]}, {S[2]} from this file: rolled back to {S[0]}" in said
    assert f"restore {S[3]} again with --resume" in said
    assert snapshots_of(destination) == [S[0]]

    put_back(a.link, good)
    resumed = CliRunner().invoke(app, ["restore", "eve", destination, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert f"restored eve@{S[3]} into {destination} (1 file(s)" in " ".join(resumed.output.split())
    assert_same(a, destination, S)


def _file(name: str, guid: int, base_guid: int | None, creation: int) -> ArchiveFile:
    parsed = parse_backup_name(name)
    assert parsed is not None
    identity = sidecar("tank/elabfs-eve", parsed.snapshot, guid, parsed.base, base_guid, creation)
    return ArchiveFile(name, parsed, 1, 0.0, identity)


def _snap(name: str, guid: int, txg: int) -> Snapshot:
    return Snapshot("tank/eve", name, guid, txg, creation=txg)


POINT = RestorePoint(S[3], 4, [_file(FULL, 1, None, 10), _file(LINK, 4, 1, 40)])


@pytest.mark.parametrize(
    ("after", "new", "index", "reason"),
    [
        ([_snap(S[0], 1, 10), _snap(S[1], 2, 20)], [_snap(S[1], 2, 20)], 1, None),
        ([_snap(S[0], 1, 10)], [_snap(S[0], 1, 10)], 0, "the first link has no earlier"),
        ([_snap(S[0], 9, 10), _snap(S[1], 2, 20)], [_snap(S[1], 2, 20)], 1, "recorded GUID"),
        (
            [_snap(S[0], 1, 10), _snap("mine", 7, 15), _snap(S[1], 2, 20)],
            [_snap(S[1], 2, 20)],
            1,
            f"mine after {S[0]} were not received by this link",
        ),
    ],
    ids=["rolls-back", "first-link", "base-guid-differs", "foreign-snapshot-after-base"],
)
def test_rollback_only_destroys_what_the_failed_link_received(
    after: list[Snapshot], new: list[Snapshot], index: int, reason: str | None
) -> None:
    found = why_no_rollback(after, new, POINT, index)
    if reason is None:
        assert found is None
    else:
        assert found is not None and reason in found


def test_the_next_step_names_the_flag_the_next_run_needs() -> None:
    assert next_step(POINT, 1, exists=True, damaged=True) == (
        f"replace {LINK} with a sound copy, then restore {S[3]} again with --resume"
    )
    assert next_step(POINT, 0, exists=True, damaged=False) == (
        f"once the cause is fixed, restore {S[3]} again with --force"
    )
    assert next_step(POINT, 0, exists=False, damaged=True).endswith(f"restore {S[3]} again")
