"""The s3:// target's settings: its URL grammar and the `target.s3` section.

Credentials come only from the AWS chain: none in the URL, none in the settings,
and a refusal never repeats what it refused.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from zfs_offsite.settings import SettingsError, load_settings, parse_target_url

pytestmark = pytest.mark.usefixtures("clean_settings_environment")

SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCY"


def errors_of(config: Path | None = None) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load_settings(config)
    return list(caught.value.lines)


@pytest.mark.parametrize(
    ("url", "bucket", "prefix", "shown"),
    [
        ("s3://zfs-backups/lab", "zfs-backups", "lab", "s3://zfs-backups/lab"),
        (
            "s3://zfs-backups/lab/site-a/",
            "zfs-backups",
            "lab/site-a",
            "s3://zfs-backups/lab/site-a",
        ),
        ("s3://zfs-backups", "zfs-backups", "", "s3://zfs-backups/"),
        ("s3://a.b-c.9/x%20y", "a.b-c.9", "x y", "s3://a.b-c.9/x y"),
    ],
)
def test_an_s3_url_names_the_bucket_and_the_prefix(
    url: str, bucket: str, prefix: str, shown: str
) -> None:
    parsed = parse_target_url(url)
    assert (parsed.scheme, parsed.host, parsed.path, str(parsed)) == ("s3", bucket, prefix, shown)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"s3://AKIAEXAMPLE:{SECRET}@zfs-backups/lab", "the s3 URL holds credentials"),
        (f"s3://{SECRET}@zfs-backups/lab", "the s3 URL holds credentials"),
        ("s3://Zfs_Backups/lab", "'Zfs_Backups' is not a valid S3 bucket name"),
        ("s3://ab/lab", "'ab' is not a valid S3 bucket name"),
        ("s3://" + "b" * 64 + "/lab", "is not a valid S3 bucket name"),
        ("s3://-backups/lab", "'-backups' is not a valid S3 bucket name"),
        ("s3://zfs..backups/lab", "'zfs..backups' is not a valid S3 bucket name"),
        ("s3://192.168.1.5/lab", "'192.168.1.5' is not a valid S3 bucket name"),
        ("s3:///lab", "an s3 URL needs a bucket"),
        ("s3://zfs-backups:9000/lab", "the s3 URL names a port (zfs-backups:9000)"),
        ("s3://zfs-backups/a//b", "the s3 URL's prefix 'a//b' has an empty, '.' or '..' part"),
        ("s3://zfs-backups/a/../b", "has an empty, '.' or '..' part"),
        ("s3://zfs-backups/lab?region=x", "the URL has a '?' or '#' part"),
    ],
)
def test_a_bad_s3_url_is_refused_in_one_line_naming_the_fix(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)) as caught:
        parse_target_url(url)
    message = str(caught.value)
    assert "\n" not in message and SECRET not in message
    assert "e.g. s3://zfs-backups/lab" in message or "target.s3" in message


def test_the_s3_section_is_read_from_toml(tmp_path: Path) -> None:
    config = tmp_path / "z.toml"
    config.write_text(
        '[target]\nurl = "s3://zfs-backups/lab"\n'
        '[target.s3]\nendpoint_url = "http://127.0.0.1:7480"\nregion = "eu-1"\n'
        'addressing_style = "path"\nprofile = "backup"\n'
    )
    s3 = load_settings(config).target.s3
    assert (s3.endpoint_url, s3.region, s3.addressing_style, s3.profile) == (
        "http://127.0.0.1:7480",
        "eu-1",
        "path",
        "backup",
    )


@pytest.mark.parametrize(
    "key", ["aws_access_key_id", "secret_access_key", "access_key", "session_token"]
)
def test_credentials_in_the_settings_are_refused_with_the_fix(tmp_path: Path, key: str) -> None:
    config = tmp_path / "z.toml"
    config.write_text(f'[target]\nurl = "s3://zfs-backups/lab"\n[target.s3]\n{key} = "{SECRET}"\n')
    (line,) = errors_of(config)
    assert line == (
        f"unknown setting target.s3.{key} ({config}:4): S3 credentials are never read from "
        "the settings (they would be shown and logged): remove it, and set AWS_ACCESS_KEY_ID "
        "and AWS_SECRET_ACCESS_KEY in the environment, name a section of ~/.aws/credentials "
        "in target.s3.profile or a Prefect aws-credentials block in "
        "target.s3.credentials_block"
    )


def test_a_credentials_block_is_named_in_toml_and_shown_by_name(tmp_path: Path) -> None:
    from zfs_offsite.settings import explain_settings

    config = tmp_path / "z.toml"
    config.write_text(
        '[target]\nurl = "s3://zfs-backups/lab"\n[target.s3]\ncredentials_block = "offsite-s3"\n'
    )
    assert load_settings(config).target.s3.credentials_block == "offsite-s3"
    shown = [(ln.name, ln.value) for ln in explain_settings(config)]
    assert ("target.s3.credentials_block", '"offsite-s3"') in shown


@pytest.mark.parametrize(
    ("lines", "says"),
    [
        (
            'credentials_block = "offsite-s3"\nprofile = "backup"',
            "credentials_block and profile both name S3 keys: keep one",
        ),
        ('credentials_block = "Offsite_S3"', "must be the name of a Prefect block"),
    ],
)
def test_a_block_with_a_profile_or_a_bad_block_name_is_one_line(
    tmp_path: Path, lines: str, says: str
) -> None:
    config = tmp_path / "z.toml"
    config.write_text(f'[target]\nurl = "s3://zfs-backups/lab"\n[target.s3]\n{lines}\n')
    (line,) = errors_of(config)
    assert says in line and "target.s3" in line, line


@pytest.mark.parametrize(
    ("endpoint", "says"),
    [
        (f"http://AKIAEXAMPLE:{SECRET}@127.0.0.1:7480", "the endpoint URL holds credentials"),
        ("127.0.0.1:7480", "must be an http:// or https:// URL with a host"),
        ("ftp://store", "must be an http:// or https:// URL with a host"),
        ("http://store:0", "the port must be a number from 1 to 65535"),
    ],
)
def test_a_bad_endpoint_url_is_refused(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, says: str
) -> None:
    monkeypatch.setenv("ZFS_OFFSITE_TARGET__URL", "s3://zfs-backups/lab")
    monkeypatch.setenv("ZFS_OFFSITE_TARGET__S3__ENDPOINT_URL", endpoint)
    (line,) = errors_of()
    assert line.startswith("setting target.s3.endpoint_url (env ZFS_OFFSITE_TARGET__S3__")
    assert says in line and SECRET not in line


def test_settings_hold_no_aws_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEYID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SECRET + "token")
    monkeypatch.setenv("ZFS_OFFSITE_TARGET__URL", "s3://zfs-backups/lab")
    settings = load_settings()
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    assert settings.target.parsed.host == "zfs-backups"
    assert SECRET not in shown and "AKIAEXAMPLEKEYID" not in shown
