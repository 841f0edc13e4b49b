"""Restore, verify and drill on a bucket, through the CLI on a real RGW.

Restore: into a dataset (streamed ranged GETs → decompress → `zfs receive`),
continued with `--resume`, downloaded with `--to-dir`, and by hand with the
standard-tool commands `--commands` prints. Verify: its record and rotation,
a corrupted object found, marked and cleared. Drill: a scratch receive, its
record in the bucket.

The archive is the tool's own, made on file:// (a real pool, two nights: a full and
an incremental, alice's larger than one ranged GET) and copied into the bucket with
`rclone copy`, as an admin makes it.
"""

from __future__ import annotations

import json
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
VERIFY_RECORD = ".zfs-offsite-verified.json"
DRILL_RECORD = ".zfs-offsite-drills.json"


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
        # alice's incremental spans two ranged GETs (8 MiB each): random data, incompressible
        size = 9 if member == "alice" else 1
        write_member_data(pool.mountpoint / f"elabfs-{member}", 7, megabytes=size)
        snapshot(f"{pool.name}/elabfs-{member}", NEWEST)
    back_up(cli.env)
    return cli


def aws_env(rgw: Rgw) -> dict[str, str]:
    """The S3 user's keys and region as the standard AWS variables: the only credentials."""
    return {k: v for k, v in rgw.environment().items() if k.startswith("AWS_") and "URL" not in k}


def on_bucket(rgw: Rgw, file_cli: Cli, bucket: str) -> Cli:
    """The CLI on a copy of the file:// archive in `bucket`."""
    copy_with_rclone(rgw, file_archive(file_cli), bucket)
    return file_cli.with_env(
        ZFS_OFFSITE_TARGET__URL=f"s3://{bucket}/{PREFIX}",
        ZFS_OFFSITE_TARGET__S3__ENDPOINT_URL=rgw.endpoint,
        **aws_env(rgw),
    )


def file_archive(file_cli: Cli) -> Path:
    return Path(file_cli.env["ZFS_OFFSITE_TARGET__URL"].removeprefix("file://"))


@pytest.fixture(scope="module")
def s3_cli(rgw: Rgw, file_cli: Cli) -> Cli:
    """Restores only read: one copy serves them all."""
    rgw.create_bucket("w3-restore")
    return on_bucket(rgw, file_cli, "w3-restore")


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
    assert again.code == 1, again.output
    assert again.err_lines[-1].startswith(
        f"error: restore failed: destination {destination} exists"
    )

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
    archive = file_archive(file_cli) / "alice"
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


def object_names(rgw: Rgw, bucket: str) -> set[str]:
    listed = rgw.client().list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/")
    return {item["Key"].removeprefix(f"{PREFIX}/") for item in listed.get("Contents", [])}


def read_object(rgw: Rgw, bucket: str, name: str) -> bytes:
    return rgw.client().get_object(Bucket=bucket, Key=f"{PREFIX}/{name}")["Body"].read()


def test_verify_reads_the_bucket_records_it_and_rotates(
    rgw: Rgw, bucket: str, file_cli: Cli
) -> None:
    on = on_bucket(rgw, file_cli, bucket).with_env(ZFS_OFFSITE_VERIFY__CYCLE_RUNS="4")
    first = on("verify", "--json")
    assert first.code == 0, first.output
    files = [f for m in json.loads(first.stdout)["members"] for f in m["files"]]
    assert len(files) == 2 * len(MEMBERS)
    assert {(f["verdict"], f["read"]) for f in files} == {("ok", "in full: never read")}
    assert not [line for line in first.err_lines if line.startswith("warning:")]
    record = json.loads(read_object(rgw, bucket, VERIFY_RECORD))
    assert {
        (member, name) for member, entry in record["members"].items() for name in entry["files"]
    } == {(m["member"], f["file"]) for m in json.loads(first.stdout)["members"] for f in m["files"]}

    second = on("verify", "--json")
    assert second.code == 0, second.output
    again = [f for m in json.loads(second.stdout)["members"] for f in m["files"]]
    deferred = [f for f in again if f["detail"].startswith("not read this run (rotation)")]
    assert 0 < len(deferred) < len(again)  # the rotation: part of the archive, not all of it
    assert {f["verdict"] for f in again} == {"ok"}
    assert not any(name.endswith(".partial") for name in object_names(rgw, bucket))


def test_verify_finds_a_corrupted_object_names_it_marks_it_and_clears_the_mark(
    rgw: Rgw, bucket: str, file_cli: Cli
) -> None:
    on = on_bucket(rgw, file_cli, bucket)
    (name,) = [
        n
        for n in object_names(rgw, bucket)
        if n.startswith("alice/") and ".to." in n and n.endswith(".zst")
    ]
    good = read_object(rgw, bucket, name)
    assert len(good) > 8 * 1024 * 1024  # the flipped byte is in the second ranged GET
    bad = bytearray(good)
    bad[8 * 1024 * 1024 + 100] ^= 1
    rgw.client().put_object(Bucket=bucket, Key=f"{PREFIX}/{name}", Body=bytes(bad))

    verify = on("verify", "--json")
    assert verify.code == 1, verify.output
    assert "Traceback" not in verify.output
    assert verify.err_lines[-1] == "error: verify failed: verify found 1 unsound member(s): alice"
    (alice,) = [m for m in json.loads(verify.stdout)["members"] if m["member"] == "alice"]
    (row,) = [f for f in alice["files"] if f["verdict"] == "corrupt"]
    assert f"alice/{row['file']}" == name and "corrupt" in row["detail"]
    assert "\n" not in row["detail"]  # the why, one line, in the file's row (as on SFTP)
    assert f"{name}.corrupt" in object_names(rgw, bucket)

    status = on("status", "--json")
    members = {m["member"]: m for m in json.loads(status.stdout)["members"]}
    assert members["alice"]["corrupt_files"] == [name.removeprefix("alice/")]

    rgw.client().put_object(Bucket=bucket, Key=f"{PREFIX}/{name}", Body=good)
    healed = on("verify", "--json", "--all")
    assert healed.code == 0, healed.output
    assert f"{name}.corrupt" not in object_names(rgw, bucket)


def test_drill_receives_from_the_bucket_and_records_it_there(
    rgw: Rgw, bucket: str, file_cli: Cli, pool: Pool
) -> None:
    scratch = f"{pool.name}/w3-drill"
    on = on_bucket(rgw, file_cli, bucket).with_env(
        ZFS_OFFSITE_DRILL__SCRATCH_DATASET=scratch, ZFS_OFFSITE_DRILL__CYCLE_RUNS="1"
    )
    drill = on("drill")
    assert drill.code == 0, drill.output
    for member in MEMBERS:
        assert f"{member}: restorable, proven" in drill.stdout
    record = json.loads(read_object(rgw, bucket, DRILL_RECORD))
    assert sorted(record) == sorted(MEMBERS)
    for member in MEMBERS:
        assert record[member]["snapshot"] == NEWEST
        assert record[member]["guid"] == guid(f"{pool.name}/elabfs-{member}@{NEWEST}")
    leftover = subprocess.run(
        ["zfs", "list", "-H", "-o", "name", "-r", scratch], capture_output=True, text=True
    )
    assert leftover.stdout.split() in ([], [scratch])  # the scratch receives are gone
