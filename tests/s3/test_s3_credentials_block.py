"""S3 keys from a Prefect `aws-credentials` block (`target.s3.credentials_block`, issue 22).

A real Prefect server holds the block, created as the UI's form does (the
server's own `aws-credentials` block type, no prefect-aws); the CLI runs with no
AWS_* variable and no ~/.aws, so the block's keys are the only ones it can sign
with. The secret must appear in no command output, no flow run's parameters,
logs or artifacts.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import Cli, file_archive_cli
from tests.support.prefect_server import prefect_server
from tests.support.rgw import Rgw
from tests.support.services import Pool, create_pool, run
from tests.support.zfsdata import SNAP

PREFIX = "lab/zfs"
MEMBER = "alice"
BLOCK = "s10c-offsite-s3"

# What the UI's "Add block, AWS Credentials" form sends: the server knows the block type
# (Prefect's collection registry) with no prefect-aws installed anywhere.
SAVE_BLOCK = """
import os, sys
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import BlockDocumentCreate
fields = dict(arg.split("=", 1) for arg in sys.argv[2:])
for name in ("aws_access_key_id", "aws_secret_access_key"):
    if name in os.environ:
        fields[name] = os.environ[name]
with get_client(sync_client=True) as client:
    kind = client.read_block_type_by_slug("aws-credentials")
    schema = client.get_most_recent_block_schema_for_block_type(kind.id)
    client.create_block_document(
        BlockDocumentCreate(
            name=sys.argv[1], data=fields, block_type_id=kind.id, block_schema_id=schema.id
        )
    )
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A Prefect server; its clients' environment (without the caller's AWS_* variables)."""
    home = tmp_path_factory.mktemp("s10c-prefect")
    with prefect_server(home) as env:
        yield {k: v for k, v in env.items() if not k.startswith("AWS_")}


@pytest.fixture(scope="module")
def pool(zfs_fuse: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    """One never-mounted member with the snapshot SNAP: small streams."""
    pool = create_pool(tmp_path_factory.mktemp("s10c-pool"), prefix="s10c")
    run(["zfs", "create", "-o", "canmount=off", f"{pool.name}/elabfs-{MEMBER}"])
    run(["zfs", "snapshot", f"{pool.name}/elabfs-{MEMBER}@{SNAP}"])
    yield pool
    pool.destroy()


def save_block(server: dict[str, str], name: str, **fields: str) -> None:
    """Create an aws-credentials block as the UI would (keys through the environment)."""
    secret = {
        k: fields.pop(k) for k in ("aws_access_key_id", "aws_secret_access_key") if k in fields
    }
    args = [f"{k}={v}" for k, v in fields.items()]
    done = subprocess.run(
        [sys.executable, "-c", SAVE_BLOCK, name, *args],
        env=server | secret,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture
def block_cli(server: dict[str, str], rgw: Rgw, bucket: str, pool: Pool, tmp_path: Path) -> Cli:
    """The CLI on the bucket with the server's PREFECT_API_URL and no AWS keys anywhere."""
    cli = file_archive_cli(tmp_path, pool.name)
    env = {k: v for k, v in cli.env.items() if not k.startswith("AWS_")}
    return Cli(env, cli.cwd).with_env(
        PREFECT_API_URL=server["PREFECT_API_URL"],
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        ZFS_OFFSITE_TARGET__URL=f"s3://{bucket}/{PREFIX}",
        ZFS_OFFSITE_TARGET__S3__ENDPOINT_URL=rgw.endpoint,
        ZFS_OFFSITE_TARGET__S3__CREDENTIALS_BLOCK=BLOCK,
        ZFS_OFFSITE_RETRIES="0",
    )


def stored_keys(rgw: Rgw, bucket: str) -> list[str]:
    listed = rgw.client().list_objects_v2(Bucket=bucket, Prefix=PREFIX + "/")
    return sorted(o["Key"][len(PREFIX) + 1 :] for o in listed.get("Contents", []))


def run_records(api_url: str) -> tuple[list[str], list[str], list[str]]:
    """Every flow run's parameters, every log line and every artifact on the server, as text."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def read() -> tuple[list[str], list[str], list[str]]:
        async with get_client() as client:
            runs = await client.read_flow_runs()
            logs = await client.read_logs()
            artifacts = await client.read_artifacts()
        return (
            [repr(r.parameters) for r in runs],
            [log.message for log in logs],
            [repr(a.data) + repr(a.description) for a in artifacts],
        )

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        return asyncio.run(read())


def test_backup_and_verify_sign_with_the_blocks_keys_and_show_none(
    server: dict[str, str], rgw: Rgw, bucket: str, block_cli: Cli
) -> None:
    save_block(
        server,
        BLOCK,
        aws_access_key_id=rgw.access_key,
        aws_secret_access_key=rgw.secret_key,
        region_name=rgw.region,
    )
    backup = block_cli("backup")
    assert backup.code == 0, backup.output
    stored = stored_keys(rgw, bucket)
    assert ".zfs-offsite-archive.json" in stored
    data = [k for k in stored if k.startswith(f"{MEMBER}/") and k.endswith(".zst")]
    assert len(data) == 1 and f"{data[0]}.sha256" in stored, stored
    verify = block_cli("verify")
    assert verify.code == 0, verify.output
    config = block_cli("config")
    assert config.code == 0, config.output
    assert any(
        "target.s3.credentials_block" in ln and BLOCK in ln for ln in config.output.splitlines()
    )

    parameters, logs, artifacts = run_records(server["PREFECT_API_URL"])
    assert len(parameters) == 2 and logs and artifacts  # the backup's and verify's runs
    everything = [backup.output, verify.output, config.output, *parameters, *logs, *artifacts]
    assert not [text for text in everything if rgw.secret_key in text]


@pytest.mark.parametrize(
    ("block", "fields", "said"),
    [
        ("s10c-no-such-block", None, "has no aws-credentials block of that name: create it"),
        ("s10c-keyless", {"profile_name": "lab"}, "the block has no aws_access_key_id and aws_"),
    ],
)
def test_a_missing_or_keyless_block_is_one_line_and_exit_2(
    server: dict[str, str], block_cli: Cli, block: str, fields: dict[str, Any] | None, said: str
) -> None:
    if fields is not None:
        save_block(server, block, **fields)
    done = block_cli("backup", ZFS_OFFSITE_TARGET__S3__CREDENTIALS_BLOCK=block)
    assert done.code == 2, done.output
    assert "Traceback" not in done.output
    lines = [ln for ln in done.err_lines if said in ln]
    assert len(lines) == 1 and f"target.s3.credentials_block {block!r}" in lines[0], done.output


def test_status_without_the_blocks_server_is_one_line_critical(block_cli: Cli) -> None:
    """`status` reads the store in its own process: a server that does not answer is named."""
    from tests.support.services import free_port

    dead = f"http://127.0.0.1:{free_port()}/api"
    done = block_cli("status", PREFECT_API_URL=dead)
    assert done.code == 2, done.output
    assert "Traceback" not in done.output
    said = f"cannot read the block from the Prefect server at {dead} (ConnectError)"
    assert [ln for ln in done.err_lines if said in ln], done.output
