"""An archive made on a file:// target and copied into the bucket with `rclone copy`
reads the same through s3://: `status` and `plan` show the same members and files,
and every stored file's bytes, read back in ranged GETs, match its `.sha256`.

The archive is the tool's own (a real pool, two nights: a full and an incremental);
the copy is a standard tool's, keys PREFIX/<member>/<file>, as an admin makes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import Cli, file_archive_cli
from tests.support.rgw import Rgw
from tests.support.services import Pool, create_pool
from tests.support.zfsdata import populate_members, snapshot, write_member_data
from zfs_offsite.connect import open_store
from zfs_offsite.errors import ConfigError
from zfs_offsite.jobs.restore import plan_restore
from zfs_offsite.remote.s3 import S3Store
from zfs_offsite.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
MEMBERS = ("alice", "bob")
PREFIX = "site-a/zfs"


@pytest.fixture(scope="module")
def pool(zfs_fuse: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    pool = create_pool(tmp_path_factory.mktemp("s3r-pool"), prefix="s3r")
    populate_members(pool.name, pool.mountpoint, MEMBERS, megabytes=1)
    yield pool
    pool.destroy()


def back_up(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.backup_once"],
        env=env | {"PYTHONPATH": str(REPO)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def file_cli(pool: Pool, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """The pool backed up twice (a full, then an incremental) to a file:// archive."""
    cli = file_archive_cli(tmp_path_factory.mktemp("s3r-cli"), pool.name)
    back_up(cli.env)
    for member in MEMBERS:
        write_member_data(pool.mountpoint / f"elabfs-{member}", 7, megabytes=1)
        snapshot(f"{pool.name}/elabfs-{member}", "auto-20190807.0200-1w")
    back_up(cli.env)
    return cli


def copy_with_rclone(rgw: Rgw, source: Path, bucket: str) -> None:
    """`rclone copy` to s3 with its config in the environment, as an admin would run it."""
    remote = {
        "RCLONE_CONFIG_RGW_TYPE": "s3",
        "RCLONE_CONFIG_RGW_PROVIDER": "Ceph",
        "RCLONE_CONFIG_RGW_ENDPOINT": rgw.endpoint,
        "RCLONE_CONFIG_RGW_ACCESS_KEY_ID": rgw.access_key,
        "RCLONE_CONFIG_RGW_SECRET_ACCESS_KEY": rgw.secret_key,
        "RCLONE_CONFIG_RGW_REGION": rgw.region,
        "RCLONE_CONFIG_RGW_FORCE_PATH_STYLE": "true",
    }
    done = subprocess.run(
        ["rclone", "copy", str(source), f"rgw:{bucket}/{PREFIX}"],
        # rclone 1.60 cannot load a CA bundle into its plain-HTTP transport: none here.
        env={k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"} | remote,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture
def s3_cli(rgw: Rgw, bucket: str, file_cli: Cli) -> Cli:
    archive = Path(file_cli.env["ZFS_OFFSITE_TARGET__URL"].removeprefix("file://"))
    copy_with_rclone(rgw, archive, bucket)
    aws = {k: v for k, v in rgw.environment().items() if k.startswith("AWS_") and "URL" not in k}
    return file_cli.with_env(
        ZFS_OFFSITE_TARGET__URL=f"s3://{bucket}/{PREFIX}",
        ZFS_OFFSITE_TARGET__S3__ENDPOINT_URL=rgw.endpoint,
        **aws,
    )


def status_of(cli: Cli) -> tuple[int, dict[str, object]]:
    done = cli("status", "--json")
    assert "Traceback" not in done.output
    document = json.loads(done.stdout)
    for member in document["members"]:
        member.pop("age_hours")  # the same snapshot, read a moment later
    document.pop("target")
    return done.code, document


def test_status_and_plan_read_the_copied_archive_as_the_file_one(
    file_cli: Cli, s3_cli: Cli
) -> None:
    code, on_file = status_of(file_cli)
    assert code == 0, on_file
    assert sorted(m["member"] for m in on_file["members"]) == sorted(MEMBERS)  # type: ignore[index]
    assert all(m["chain_length"] == 2 for m in on_file["members"])  # type: ignore[index]
    assert status_of(s3_cli) == (code, on_file)

    plans = [json.loads(cli("plan", "--json").stdout) for cli in (file_cli, s3_cli)]
    for plan in plans:
        plan.pop("target")
    assert plans[0] == plans[1]


def test_every_file_read_back_from_the_bucket_matches_its_checksum(
    file_cli: Cli, s3_cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3_cli.env.items():
        if name.startswith(("AWS_", "ZFS_OFFSITE_")):
            monkeypatch.setenv(name, value)
    archive = Path(file_cli.env["ZFS_OFFSITE_TARGET__URL"].removeprefix("file://"))
    store = open_store(load_settings().target)
    try:
        assert isinstance(store, S3Store)
        for member in MEMBERS:
            on_file = sorted(p.name for p in (archive / member).iterdir())
            listed = {e.name: e.size for e in store.listdir(member)}
            assert sorted(listed) == on_file
            backups = [n for n in on_file if n.endswith(".zst")]
            assert len(backups) == 2
            for name in backups:
                digest = hashlib.sha256()
                for chunk in store.read_chunks(f"{member}/{name}"):
                    digest.update(chunk)
                recorded = (archive / member / f"{name}.sha256").read_text().split()[0]
                assert digest.hexdigest() == recorded
                assert listed[name] == (archive / member / name).stat().st_size
    finally:
        store.close()


def test_a_restore_plan_lists_the_member_alone_and_names_a_missing_one(
    s3_cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Planning a restore lists the member's directory, not the archive's root as well
    (two requests fewer on every S3 restore); an unknown member is still refused by name."""
    for name, value in s3_cli.env.items():
        if name.startswith(("AWS_", "ZFS_OFFSITE_")):
            monkeypatch.setenv(name, value)
    store = open_store(load_settings().target)
    try:
        assert isinstance(store, S3Store)
        listed: list[str] = []

        def seen(params: dict, **_: object) -> None:
            listed.append(params["query_string"]["prefix"])

        store._client.meta.events.register("before-call.s3.ListObjectsV2", seen)
        point = plan_restore(store, "alice", None)
        assert (point.snapshot, len(point.chain)) == ("auto-20190807.0200-1w", 2)
        assert listed == [f"{PREFIX}/alice/"]
        with pytest.raises(ConfigError) as refused:
            plan_restore(store, "carol", None)
        assert "member carol: no such member directory" in str(refused.value)
        assert "alice, bob" in str(refused.value)
    finally:
        store.close()


def test_status_on_a_missing_bucket_is_critical_in_one_line(s3_cli: Cli) -> None:
    done = s3_cli("status", ZFS_OFFSITE_TARGET__URL=f"s3://zfs-offsite-no-such-bucket/{PREFIX}")
    errors = [line for line in done.err_lines if line.startswith("error:")]
    assert done.code == 2 and "Traceback" not in done.output
    assert len(errors) == 1
    assert "the bucket 'zfs-offsite-no-such-bucket' does not exist at http://" in errors[0]
    assert "zfs-offsite never creates a bucket" in errors[0]
