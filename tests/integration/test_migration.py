"""README's migration on real zfs-fuse: the example config over a years-old seed archive.

The first night extends every member's seed chain with an incremental; fulls
fall due only after this tool has extended a chain for `after_days`, and then
no more than the night's quota start at once.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.cli import Cli, base_env
from tests.support.services import Pool, SshServer, ensure_test_user
from tests.support.zfsdata import MEMBERS, create_member, gzip_send, snapshot, write_member_data
from zfs_offsite.archive.identity import MARKER_NAME, ArchiveRootError
from zfs_offsite.connect import open_store
from zfs_offsite.jobs.backup import backup_member, discover_members, plan_member
from zfs_offsite.plan.backup import Action, BackupPlan, apply_full_quota
from zfs_offsite.plan.cadence import full_quota
from zfs_offsite.settings import Settings, load_settings

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).parents[2] / "examples" / "seed-deployment.toml"
S1, S2, S3, S4 = (f"auto-2019080{d}.0200-1w" for d in (6, 7, 8, 9))
SEED_ERA = datetime(2019, 8, 7, 2, 30, tzinfo=UTC).timestamp()  # what `touch -d` left


def seed_made_archive(pool: Pool, archive: Path) -> None:
    """Per member: S1..S3 locally; on the server the seed's full of S1 and S1 -> S2, years old."""
    user = ensure_test_user()
    for seed, name in enumerate(MEMBERS):
        dataset = create_member(pool.name, name)
        for i, snap in enumerate((S1, S2, S3)):
            write_member_data(pool.mountpoint / f"elabfs-{name}", 10 * seed + i, 1)
            snapshot(dataset, snap)
        member_dir = archive / name
        member_dir.mkdir()
        gzip_send(["zfs", "send", f"{dataset}@{S1}"], member_dir / f"elabfs-{name}@{S1}.gz")
        gzip_send(
            ["zfs", "send", "-I", f"{dataset}@{S1}", f"{dataset}@{S2}"],
            member_dir / f"elabfs-{name}@{S1}.to.elabfs-{name}@{S2}.gz",
        )
        for path in member_dir.iterdir():
            os.utime(path, (SEED_ERA, SEED_ERA))
        for path in (member_dir, *member_dir.iterdir()):
            os.chown(path, user.pw_uid, user.pw_gid)


def example_settings(pool: Pool, archive: Path, sshd: SshServer) -> Settings:
    """examples/seed-deployment.toml as shipped, pointed at the test pool and server."""
    target = {
        "url": f"sftp://{sshd.user}@127.0.0.1:{sshd.port}{archive}",
        "key_file": str(sshd.client_key),
        "known_hosts": str(sshd.known_hosts),
        "timeout": 10,
    }
    return load_settings(EXAMPLE, source={"pool": pool.name}, target=target)


def adopt_as_a_user_would(archive: Path, pool: Pool, sshd: SshServer, home: Path) -> None:
    """README's migration step: `zfs-offsite adopt -c examples/seed-deployment.toml`, once."""
    cli = Cli(base_env(home), home)
    adopted = cli(
        "adopt",
        "-c",
        str(EXAMPLE),
        ZFS_OFFSITE_SOURCE__POOL=pool.name,
        ZFS_OFFSITE_TARGET__URL=f"sftp://{sshd.user}@127.0.0.1:{sshd.port}{archive}",
        ZFS_OFFSITE_TARGET__KEY_FILE=str(sshd.client_key),
        ZFS_OFFSITE_TARGET__KNOWN_HOSTS=str(sshd.known_hosts),
        timeout=120,
    )
    assert adopted.code == 0, adopted.output
    assert "adopted archive" in adopted.stderr
    assert f"recorded it on {len(MEMBERS)} dataset(s)" in adopted.stderr
    assert f"{2 * len(MEMBERS)} seed-era file(s) carry no checksum" in adopted.stderr
    assert "zfs-offsite verify --all" in adopted.stderr
    assert json.loads((archive / MARKER_NAME).read_text())["how"] == "adopt"


def night_plans(settings: Settings) -> list[BackupPlan]:
    """What the flow and `plan` decide: every member planned, then the night's quota."""
    members = discover_members(settings)
    with closing(open_store(settings.target)) as store:
        plans = [plan_member(settings, store, m)[0] for m in members]
    return apply_full_quota(plans, full_quota(settings.full, len(members)))


def backdate_first_upload(archive: Path, name: str, days: float) -> None:
    """As if this tool had extended the member's chain since `days` ago (its sidecar says when)."""
    (sidecar,) = (archive / name).glob("*.to.*.gz.json")
    record = json.loads(sidecar.read_text())
    when = datetime.now(UTC) - timedelta(days=days)
    record["started"] = when.isoformat()
    record["finished"] = (when + timedelta(minutes=5)).isoformat()
    sidecar.write_text(json.dumps(record))


def test_seed_archive_migrates_without_a_full_and_fulls_come_one_a_night(
    pool_factory: Callable[[], Pool], sftp_dir: Path, sshd: SshServer, tmp_path: Path
) -> None:
    pool = pool_factory()
    seed_made_archive(pool, sftp_dir)
    settings = example_settings(pool, sftp_dir, sshd)
    assert settings.full.after_days == 30 and settings.compression.algorithm.value == "gzip"
    assert full_quota(settings.full, len(MEMBERS)) == 1

    # Night one: the seed chains (files from 2019) are adopted, not restarted.
    plans = night_plans(settings)
    assert [(p.member, p.action, p.base and p.base.name) for p in plans] == [
        (name, Action.INCREMENTAL, S2) for name in MEMBERS
    ]
    for p in plans:
        assert p.reason == (
            f"newest archived snapshot is {S2}; full due in 30 d: "
            "the chain has no file of this tool yet, its age counts from now"
        )
    # plan reads only; a backup refuses the unadopted seed archive and writes nothing there.
    before = sorted(p.name for p in sftp_dir.rglob("*"))
    with pytest.raises(ArchiveRootError, match="zfs-offsite adopt"):
        backup_member(settings, discover_members(settings)[0])
    assert sorted(p.name for p in sftp_dir.rglob("*")) == before
    adopt_as_a_user_would(sftp_dir, pool, sshd, tmp_path)
    for member in discover_members(settings):
        result = backup_member(settings, member)
        assert (result.action, result.base, result.snapshot) == (Action.INCREMENTAL, S2, S3)
        new_file = (
            sftp_dir / member.name / f"elabfs-{member.name}@{S2}.to.elabfs-{member.name}@{S3}.gz"
        )
        assert new_file.is_file()
        check = subprocess.run(
            ["sha256sum", "-c", f"{new_file.name}.sha256"],
            cwd=new_file.parent,
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert not (new_file.parent / f"elabfs-{member.name}@{S3}.gz").exists()  # no new full

    # The next night: extended once, a month to go.
    assert {p.reason for p in night_plans(settings)} == {
        f"{S3} is already in the archive; full due in 30 d"
    }

    # A month of this tool extending the chains later: all three are due, one starts tonight.
    for name, days in (("alice", 31), ("bob", 33), ("carol", 31)):
        backdate_first_upload(sftp_dir, name, days)
        snapshot(f"{pool.name}/elabfs-{name}", S4)
    plans = {p.member: p for p in night_plans(settings)}
    assert plans["bob"].action is Action.FULL and plans["bob"].filename == f"elabfs-bob@{S4}.gz"
    assert plans["bob"].reason == (
        "full due now (1st of 1 tonight): the chain is 33.0 days old, "
        "counted from this tool's first file in it (limit 30)"
    )
    for name in ("alice", "carol"):
        assert plans[name].action is Action.INCREMENTAL
        assert plans[name].filename == f"elabfs-{name}@{S3}.to.elabfs-{name}@{S4}.gz"
        assert plans[name].reason == (
            f"full due, deferred: quota of 1 reached tonight; newest archived snapshot is {S3}"
        )
