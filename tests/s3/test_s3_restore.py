"""Restore from a bucket, through the CLI on a real RGW: into a dataset (streamed ranged
GETs → decompress → `zfs receive`), continued with `--resume`, downloaded with
`--to-dir`, and by hand with the standard-tool commands `--commands` prints.

The archive is the tool's own, made on file:// (a real pool, two nights: a full and
an incremental) and copied into the bucket with `rclone copy`, as an admin makes it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.s3.test_s3_read_archive import MEMBERS, PREFIX, back_up, copy_with_rclone
from tests.support.cli import Cli, file_archive_cli
from tests.support.rgw import Rgw
from tests.support.services import Pool, create_pool
from tests.support.zfsdata import (
    SNAP,
    destroy_dataset,
    guid,
    populate_members,
    snapshot,
    tree_digest,
    write_member_data,
)
from zfs_offsite.jobs.restore_commands import target_reader
from zfs_offsite.settings.sections import S3Settings, TargetSettings

NEWEST = "auto-20190807.0200-1w"


@pytest.fixture(scope="module")
def pool(zfs_fuse: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    pool = create_pool(tmp_path_factory.mktemp("w3-pool"), prefix="w3r")
    populate_members(pool.name, pool.mountpoint, MEMBERS, megabytes=1)
    yield pool
    pool.destroy()


@pytest.fixture(scope="module")
def file_cli(pool: Pool, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """The pool backed up twice (a full, then an incremental) to a file:// archive."""
    cli = file_archive_cli(tmp_path_factory.mktemp("w3-cli"), pool.name)
    back_up(cli.env)
    for member in MEMBERS:
        write_member_data(pool.mountpoint / f"elabfs-{member}", 7, megabytes=1)
        snapshot(f"{pool.name}/elabfs-{member}", NEWEST)
    back_up(cli.env)
    return cli


def aws_env(rgw: Rgw) -> dict[str, str]:
    """The S3 user's keys and region as the standard AWS variables: the only credentials."""
    return {k: v for k, v in rgw.environment().items() if k.startswith("AWS_") and "URL" not in k}


@pytest.fixture(scope="module")
def s3_cli(rgw: Rgw, file_cli: Cli) -> Cli:
    bucket = "w3-restore"
    rgw.create_bucket(bucket)
    archive = Path(file_cli.env["ZFS_OFFSITE_TARGET__URL"].removeprefix("file://"))
    copy_with_rclone(rgw, archive, bucket)
    no_file_archive = {"ZFS_OFFSITE_TARGET__URL": f"s3://{bucket}/{PREFIX}"}
    return file_cli.with_env(
        **no_file_archive, ZFS_OFFSITE_TARGET__S3__ENDPOINT_URL=rgw.endpoint, **aws_env(rgw)
    )


@pytest.fixture
def destination(pool: Pool) -> Iterator[str]:
    name = f"{pool.name}/w3-restored"
    yield name
    if subprocess.run(["zfs", "list", name], capture_output=True).returncode == 0:
        destroy_dataset(name)


def mountpoint(dataset: str) -> Path:
    done = subprocess.run(
        ["zfs", "get", "-H", "-o", "value", "mountpoint", dataset],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(done.stdout.strip())


def assert_same_as_source(pool: Pool, member: str, destination: str, snap: str) -> None:
    assert guid(f"{destination}@{snap}") == guid(f"{pool.name}/elabfs-{member}@{snap}")
    source = pool.mountpoint / f"elabfs-{member}"
    assert tree_digest(mountpoint(destination)) == tree_digest(source)


def test_restore_streams_the_chain_from_the_bucket_into_a_dataset(
    s3_cli: Cli, pool: Pool, destination: str
) -> None:
    done = s3_cli("restore", "alice", destination)
    assert done.code == 0, done.output
    assert f"restored alice@{NEWEST} into {destination} (2 file(s)" in done.stdout
    assert_same_as_source(pool, "alice", destination, NEWEST)


def test_resume_receives_only_the_links_the_destination_lacks(
    s3_cli: Cli, pool: Pool, destination: str
) -> None:
    first = s3_cli("restore", "bob", destination, "--snapshot", SNAP)
    assert first.code == 0, first.output
    assert f"restored bob@{SNAP} into {destination} (1 file(s)" in first.stdout

    again = s3_cli("restore", "bob", destination)
    assert again.code == 2, again.output
    assert f"destination {destination} exists" in again.err_lines[-1]

    resumed = s3_cli("restore", "bob", destination, "--resume")
    assert resumed.code == 0, resumed.output
    assert f"restored bob@{NEWEST} into {destination} (1 file(s)" in resumed.stdout
    assert_same_as_source(pool, "bob", destination, NEWEST)


def test_to_dir_downloads_the_checked_chain_and_its_commands_restore_it(
    s3_cli: Cli, file_cli: Cli, pool: Pool, destination: str, tmp_path: Path
) -> None:
    directory = tmp_path / "dl"
    done = s3_cli("restore", "alice", destination, "--to-dir", str(directory))
    assert done.code == 0, done.output
    archive = Path(file_cli.env["ZFS_OFFSITE_TARGET__URL"].removeprefix("file://")) / "alice"
    backups = sorted(p.name for p in archive.iterdir() if p.name.endswith(".zst"))
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [*backups, *(f"{name}.sha256" for name in backups)]
    )
    for name in backups:
        assert (directory / name).read_bytes() == (archive / name).read_bytes()

    script = "\n".join(done.stdout.splitlines()) + "\n"
    run = subprocess.run(["sh", "-e"], input=script, capture_output=True, text=True, check=False)
    assert run.returncode == 0, script + run.stderr
    assert_same_as_source(pool, "alice", destination, NEWEST)


def test_printed_commands_restore_from_the_bucket_with_standard_tools_only(
    s3_cli: Cli, rgw: Rgw, pool: Pool, destination: str, tmp_path: Path
) -> None:
    done = s3_cli("restore", "bob", destination, "--commands")
    assert done.code == 0, done.output
    script = done.stdout
    assert "rclone cat" in script and "zfs receive" in script
    for secret in (rgw.access_key, rgw.secret_key):
        assert secret not in done.output
    assert subprocess.run(["zfs", "list", destination], capture_output=True).returncode != 0

    # A shell with the AWS variables and PATH only: no zfs-offsite settings, no rclone config.
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **aws_env(rgw)}
    run = subprocess.run(
        ["sh", "-e"], input=script, env=env, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, script + run.stderr
    assert_same_as_source(pool, "bob", destination, NEWEST)


def test_the_printed_reader_fetches_the_object_with_the_aws_variables_only(
    rgw: Rgw, bucket: str, tmp_path: Path
) -> None:
    """`rclone cat` as `--commands` prints it: no rclone config, keys from the environment."""
    key = f"{PREFIX}/tank~home/tank~home@auto-20190806.0200-1w.zst"
    body = os.urandom(3 * 1024 * 1024 + 5)
    rgw.client().put_object(Bucket=bucket, Key=key, Body=body)
    target = TargetSettings(url=f"s3://{bucket}/{PREFIX}", s3=S3Settings(endpoint_url=rgw.endpoint))
    line = target_reader(target)(key.removeprefix(f"{PREFIX}/"))
    assert rgw.secret_key not in line and rgw.access_key not in line

    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **aws_env(rgw)}
    done = subprocess.run(["sh", "-c", line], env=env, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == body
