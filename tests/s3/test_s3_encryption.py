"""age encryption to a bucket, through the CLI on real zfs-fuse and a real RGW.

The backup host holds the recipient (a public key) only; two nights of member
`alice` (a full, an incremental) go to the bucket encrypted (by the core, as the
CLI's backup runs it). Then, as the
restore host would: the objects are age files (their header, no plain stream
inside) that verify without the identity; `restore` with the identity gives the
source's GUID and files; `restore --to-dir` downloads them and prints commands
that restore them; `restore --commands` prints `rclone cat | age -d | zstd -d |
zfs receive` lines that run as printed with nothing but the AWS variables.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.s3.test_s3_restore_verify_drill import assert_same_as_source, aws_env
from tests.support.cli import Cli, file_archive_cli
from tests.support.rgw import Rgw
from tests.support.services import Pool, create_pool
from tests.support.zfsdata import (
    destroy_dataset,
    populate_members,
    snapshot,
    write_member_data,
)
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.keys.keygen import write_identity_file
from zfs_offsite.plan.backup import Action
from zfs_offsite.settings import Settings, load_settings

PREFIX = "lab/zfs"
NEWEST = "auto-20190807.0200-1w"
AGE_HEADER = b"age-encryption.org/v1\n"
MARKER = b"s10j-plain-marker-" * 64


@pytest.fixture(scope="module")
def pool(zfs_fuse: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    pool = create_pool(tmp_path_factory.mktemp("s10j-age-pool"), prefix="s10ja")
    populate_members(pool.name, pool.mountpoint, ["alice"], megabytes=1)
    yield pool
    pool.destroy()


@pytest.fixture(scope="module")
def sealed(rgw: Rgw, pool: Pool, tmp_path_factory: pytest.TempPathFactory) -> tuple[Cli, Path]:
    """(the backup host's CLI on the encrypted bucket: the recipient only; the identity)."""
    root = tmp_path_factory.mktemp("s10j-age")
    identity = root / "key.txt"
    public = write_identity_file(identity)
    rgw.create_bucket("s10j-age")
    nas = file_archive_cli(root, pool.name).with_env(
        ZFS_OFFSITE_TARGET__URL=f"s3://s10j-age/{PREFIX}",
        ZFS_OFFSITE_TARGET__S3__ENDPOINT_URL=rgw.endpoint,
        ZFS_OFFSITE_ENCRYPTION__RECIPIENTS=json.dumps([public]),
        **aws_env(rgw),
    )
    # The two nights by the core, as the CLI's backup runs them (a CLI run costs a minute
    # on a loaded box); the restores below go through the CLI.
    settings = load_settings(
        source={"pool": pool.name},
        target={"url": f"s3://s10j-age/{PREFIX}", "s3": {"endpoint_url": rgw.endpoint}},
        encryption={"recipients": [public]},
    )
    with pytest.MonkeyPatch.context() as env:
        for name, value in aws_env(rgw).items():
            env.setenv(name, value)
        back_up(settings)
        (pool.mountpoint / "elabfs-alice" / "marker.txt").write_bytes(MARKER)
        write_member_data(pool.mountpoint / "elabfs-alice", 7, megabytes=1)
        snapshot(f"{pool.name}/elabfs-alice", NEWEST)
        back_up(settings)
    return nas, identity


def with_identity(sealed: tuple[Cli, Path]) -> tuple[Cli, Path]:
    """The restore host's CLI: the same settings plus encryption.identity_file."""
    nas, identity = sealed
    return nas.with_env(ZFS_OFFSITE_ENCRYPTION__IDENTITY_FILE=str(identity)), identity


def back_up(settings: Settings) -> None:
    (member,) = discover_members(settings)
    assert backup_member(settings, member).action in (Action.FULL, Action.INCREMENTAL)


@pytest.fixture
def destination(pool: Pool) -> Iterator[str]:
    name = f"{pool.name}/s10j-restored"
    yield name
    if subprocess.run(["zfs", "list", name], capture_output=True).returncode == 0:
        destroy_dataset(name)


def stored(rgw: Rgw) -> dict[str, bytes]:
    client = rgw.client()
    listed = client.list_objects_v2(Bucket="s10j-age", Prefix=f"{PREFIX}/alice/")["Contents"]
    return {
        o["Key"].rsplit("/", 1)[1]: client.get_object(Bucket="s10j-age", Key=o["Key"])[
            "Body"
        ].read()
        for o in listed
    }


def test_the_bucket_holds_age_files_that_verify_without_the_identity(
    rgw: Rgw, sealed: tuple[Cli, Path]
) -> None:
    nas, _ = sealed
    objects = stored(rgw)
    backups = sorted(n for n in objects if n.endswith(".zst.age"))
    assert len(backups) == 2 and sum(".to." in n for n in backups) == 1, sorted(objects)
    assert not [n for n in objects if n.endswith(".zst")]  # no plain stream beside them
    for name in backups:
        assert objects[name].startswith(AGE_HEADER), name
        assert MARKER[:64] not in objects[name]
        assert json.loads(objects[f"{name}.json"])["recipients"], name

    # The NAS side (recipient only) verifies the stored bytes.
    verify = nas("verify", "--json")
    assert verify.code == 0, verify.output
    files = [f for m in json.loads(verify.stdout)["members"] for f in m["files"]]
    assert sorted(f["file"] for f in files) == backups
    assert {f["verdict"] for f in files} == {"ok"}


def test_restore_with_the_identity_and_by_its_downloaded_files(
    sealed: tuple[Cli, Path], pool: Pool, destination: str, tmp_path: Path
) -> None:
    cli, identity = with_identity(sealed)
    done = cli("restore", "alice", destination)
    assert done.code == 0, done.output
    assert f"restored alice@{NEWEST} into {destination} (2 file(s)" in done.stdout
    assert_same_as_source(pool, "alice", destination, NEWEST)
    destroy_dataset(destination)

    directory = tmp_path / "dl"
    fetched = cli("restore", "alice", destination, "--to-dir", str(directory))
    assert fetched.code == 0, fetched.output
    names = sorted(p.name for p in directory.iterdir())
    assert [n for n in names if not n.endswith(".sha256")] == sorted(
        n for n in names if n.endswith(".zst.age")
    )
    assert f"age -d -i {identity}" in fetched.stdout
    run = subprocess.run(
        ["sh", "-e"], input=fetched.stdout, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, fetched.stdout + run.stderr
    assert_same_as_source(pool, "alice", destination, NEWEST)


def test_printed_commands_decrypt_from_the_bucket_with_standard_tools_only(
    sealed: tuple[Cli, Path], rgw: Rgw, pool: Pool, destination: str, tmp_path: Path
) -> None:
    cli, identity = with_identity(sealed)
    done = cli("restore", "alice", destination, "--commands")
    assert done.code == 0, done.output
    script = done.stdout
    assert "rclone cat" in script and f"age -d -i {identity}" in script
    for secret in (rgw.access_key, rgw.secret_key, identity.read_text().split()[-1]):
        assert secret not in done.output

    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **aws_env(rgw)}
    run = subprocess.run(
        ["sh", "-e"], input=script, env=env, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, script + run.stderr
    assert_same_as_source(pool, "alice", destination, NEWEST)
