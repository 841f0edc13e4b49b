"""Keys from a named block reach the core through the shell's reader, and are never shown."""

from __future__ import annotations

from typing import Any

import pytest

from zfs_offsite.errors import ConfigError
from zfs_offsite.remote import s3_credentials
from zfs_offsite.remote.s3_credentials import S3Keys, keys_from_block, read_blocks_with

SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCY"
TOKEN = "FwoGZXIvYXdzEXAMPLETOKEN"


@pytest.fixture(autouse=True)
def no_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    """This test's reader only: the process's (flows/aws_block.py) is put back after."""
    monkeypatch.setattr(s3_credentials, "_reader", None)
    monkeypatch.setattr(s3_credentials, "_read", {})


def test_without_a_reader_the_block_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError) as caught:
        keys_from_block("offsite-s3")
    message = str(caught.value)
    assert message.startswith("target.s3.credentials_block 'offsite-s3': this process cannot")
    assert "unset it and give the keys through the AWS chain" in message


def test_a_block_is_read_once_per_process() -> None:
    asked: list[str] = []

    def reader(name: str) -> S3Keys:
        asked.append(name)
        return S3Keys("AKIAEXAMPLE", SECRET, TOKEN)

    read_blocks_with(reader)
    assert keys_from_block("a") is keys_from_block("a")
    keys_from_block("b")
    assert asked == ["a", "b"]


def test_the_keys_never_show_their_secret() -> None:
    shown = repr(S3Keys("AKIAEXAMPLE", SECRET, TOKEN, region="eu-1"))
    assert SECRET not in shown and TOKEN not in shown and "AKIAEXAMPLE" in shown


def signing(store: object) -> tuple[str, str, str | None, str]:
    """What the store's S3 client signs with: key id, secret, token, region."""
    client: Any = store._client  # type: ignore[attr-defined]
    frozen = client._request_signer._credentials.get_frozen_credentials()
    return frozen.access_key, frozen.secret_key, frozen.token, client.meta.region_name


def test_the_blocks_keys_win_over_the_environment_and_its_region_fills_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from zfs_offsite.remote.s3 import S3Store

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMTHEENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-the-env")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "env-region-1")
    keys = S3Keys("AKIAEXAMPLE", SECRET, TOKEN, region="eu-9")
    endpoint = "http://127.0.0.1:9"
    assert signing(S3Store("b", "p", endpoint_url=endpoint, keys=keys)) == (
        "AKIAEXAMPLE",
        SECRET,
        TOKEN,
        "eu-9",
    )
    set_region = S3Store("b", "p", endpoint_url=endpoint, region="us-east-1", keys=keys)
    assert signing(set_region)[3] == "us-east-1"  # target.s3.region wins over the block's
    assert signing(S3Store("b", "p", endpoint_url=endpoint))[0] == "AKIAFROMTHEENV"
