"""Read the S3 keys of `target.s3.credentials_block` from the Prefect server (issue 22).

The block is prefect-aws's `AwsCredentials` (block type `aws-credentials`). The
server ships that block type (Prefect's collection registry), so an admin can
create the block in the UI, with `prefect block create aws-credentials`, or with
prefect-aws's `AwsCredentials(...).save(name)`; reading it takes only Prefect's
own client (`read_block_document_by_name` with its secrets), so prefect-aws is
not needed where jobs run.

`use_credentials_blocks` hands `read_aws_block` to the core
(`zfs_offsite.remote.s3_credentials`) when the `flows` package is imported. The
keys go from the block into the S3 client and nowhere else: no message here
holds one, and none is logged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zfs_offsite.errors import ConfigError
from zfs_offsite.remote.s3_credentials import S3Keys, keys_from_block, read_blocks_with

if TYPE_CHECKING:
    from zfs_offsite.settings import Settings

BLOCK_TYPE = "aws-credentials"
SETTING = "target.s3.credentials_block"


def _create_hint(name: str) -> str:
    return (
        f"create it (`prefect block create {BLOCK_TYPE}`, the UI's Blocks page, or with "
        f"prefect-aws: AwsCredentials(aws_access_key_id=..., aws_secret_access_key=...)"
        f".save({name!r})) on that server, or correct {SETTING}"
    )


def read_aws_block(name: str) -> S3Keys:
    """The keys of the `aws-credentials` block `name`, or one ConfigError line with the fix."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise ConfigError(
            f"{SETTING} {name!r}: no Prefect server to read the block from: set "
            "PREFECT_API_URL to the server that holds it"
        )
    try:
        with get_client(sync_client=True) as client:
            document = client.read_block_document_by_name(
                name, block_type_slug=BLOCK_TYPE, include_secrets=True
            )
    except ObjectNotFound:
        raise ConfigError(
            f"{SETTING} {name!r}: the Prefect server at {url} has no {BLOCK_TYPE} block of "
            f"that name: {_create_hint(name)}"
        ) from None
    except Exception as exc:  # httpx's connection errors, an HTTP error status
        raise ConfigError(
            f"{SETTING} {name!r}: cannot read the block from the Prefect server at {url} "
            f"({type(exc).__name__}): is the server up and PREFECT_API_URL right?"
        ) from None
    return _keys(name, document.data)


def _keys(name: str, data: dict[str, Any]) -> S3Keys:
    """The block's key pair; a block without one (e.g. only a profile_name) is refused."""
    key_id, secret = data.get("aws_access_key_id"), data.get("aws_secret_access_key")
    if not key_id or not secret:
        missing = " and ".join(
            field
            for field, value in (("aws_access_key_id", key_id), ("aws_secret_access_key", secret))
            if not value
        )
        raise ConfigError(
            f"{SETTING} {name!r}: the block has no {missing}: fill them in (UI: Blocks, "
            f"{name}, Edit); a block's profile_name is not used: for ~/.aws set "
            "target.s3.profile instead of the block"
        )
    return S3Keys(
        access_key_id=str(key_id),
        secret_access_key=str(secret),
        session_token=str(data["aws_session_token"]) if data.get("aws_session_token") else None,
        region=str(data["region_name"]) if data.get("region_name") else None,
    )


def use_credentials_blocks() -> None:
    """Let the core read `target.s3.credentials_block` through this process's Prefect client."""
    read_blocks_with(read_aws_block)


def read_credentials_block(settings: Settings) -> None:
    """Read the block before any task: a wrong one fails the run once, as a ConfigError
    (the CLI's exit 2), not each member with the same line. Cached for the tasks."""
    name = settings.target.s3.credentials_block
    if name and settings.target.parsed.scheme == "s3":
        keys_from_block(name)
