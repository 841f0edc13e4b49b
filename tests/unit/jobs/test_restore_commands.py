"""The shell lines `restore --commands` prints: each file read straight from the target."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from zfs_offsite.errors import ConfigError
from zfs_offsite.jobs.restore_commands import restore_lines, target_reader
from zfs_offsite.settings.sections import S3Settings, TargetSettings

FILES = ["tank~home@a.zst.age", "tank~home@a.to.tank~home@b.zst"]


def s3_target(**s3: str) -> TargetSettings:
    return TargetSettings(url="s3://lab-backups/site-a/zfs", s3=S3Settings(**s3))


def test_an_s3_chain_is_read_with_rclone_cat_and_no_credential(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-secret")
    target = s3_target(endpoint_url="http://127.0.0.1:7480", region="eu-1")
    lines = restore_lines(
        FILES,
        "tank/restore/home",
        Path("/root/key.txt"),
        reader=target_reader(target),
        member="tank~home",
    )
    remote = (
        ':s3,provider=Other,env_auth=true,endpoint="http://127.0.0.1:7480",region="eu-1":'
        "lab-backups/site-a/zfs/tank~home/"
    )
    assert lines == [
        "zfs create -p tank/restore",
        f"rclone cat --config '' {shlex.quote(remote + FILES[0])} | age -d -i /root/key.txt "
        "| zstd -dc | zfs receive tank/restore/home",
        f"rclone cat --config '' {shlex.quote(remote + FILES[1])} | zstd -dc "
        "| zfs receive -F tank/restore/home",
    ]
    assert not any("AKIDEXAMPLE" in line or "secret" in line for line in lines)


def test_the_endpoint_comes_from_the_aws_variable_when_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://s3.lab.example:8443")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    line = target_reader(s3_target(addressing_style="virtual", profile="lab"))("m/f.zst")
    assert line == (
        "rclone cat --config '' ':s3,provider=Other,env_auth=true,endpoint=\"https://s3.lab.example:8443\","
        'force_path_style=false,profile="lab":lab-backups/site-a/zfs/m/f.zst\''
    )


def test_aws_itself_needs_no_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    line = target_reader(s3_target())("m/f.zst")
    assert line == (
        "rclone cat --config '' ':s3,provider=AWS,env_auth=true,region=\"eu-west-1\":"
        "lab-backups/site-a/zfs/m/f.zst'"
    )


def test_a_file_target_is_read_in_place() -> None:
    reader = target_reader(TargetSettings(url="file:///srv/zfs backups"))
    assert reader("m/f.zst") == "cat -- '/srv/zfs backups/m/f.zst'"


def test_an_sftp_target_names_to_dir_instead() -> None:
    with pytest.raises(ConfigError, match="download the chain with --to-dir"):
        target_reader(TargetSettings(url="sftp://backup@nas.example/srv/zfs"))
