"""The encryption section: public keys only, each checked when the settings load."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyrage import x25519

from zfs_offsite.settings import SettingsError, load_settings

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICW95WSZOKoGNcu/nElAida52SF1Yct/B8Ha5m5o8Zg2"


# No ZFS_OFFSITE_* variable, .env or ./zfs-offsite.toml from the caller leaks in.
pytestmark = pytest.mark.usefixtures("clean_settings_environment")


def test_off_by_default() -> None:
    assert not load_settings().encryption.enabled


def test_recipients_from_the_list_and_the_file(tmp_path: Path) -> None:
    public = str(x25519.Identity.generate().to_public())
    keys = tmp_path / "recipients.txt"
    keys.write_text(f"# lab\n{SSH_KEY} admin\n{public}\n")
    config = tmp_path / "z.toml"
    config.write_text(
        f'[encryption]\nrecipients = ["{public}"]\nrecipients_file = "{keys}"\n'
        'identity_file = "/root/restore-key.txt"\n'
    )
    settings = load_settings(config).encryption
    assert settings.enabled
    assert [k.key for k in settings.recipient_keys()] == [public, SSH_KEY]  # no duplicate
    assert settings.identity_file == Path("/root/restore-key.txt")


def test_a_bad_recipient_names_the_setting_its_line_and_the_fix(tmp_path: Path) -> None:
    config = tmp_path / "z.toml"
    config.write_text('[encryption]\nrecipients = ["age1nope"]\n')
    with pytest.raises(SettingsError) as caught:
        load_settings(config)
    assert caught.value.lines == (
        f"setting encryption.recipients ({config}:2): recipient 1: 'age1nope' is not an age "
        "public key (invalid Bech32 encoding): give an age1… public key (zfs-offsite keygen, "
        "age-keygen) or an ssh-ed25519/ssh-rsa line",
    )


def test_a_recipients_file_that_is_missing_or_empty_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "keys"
    empty.write_text("# nothing yet\n")
    binary = tmp_path / "keys.bin"
    binary.write_bytes(b"\xff\xfe age1")
    for path, says in [
        (tmp_path / "nope", "does not exist: name the file of public keys"),
        (empty, "names no recipient: add a public key (age1…) a line"),
        (tmp_path, "is a directory, not a file: name the file of public keys"),
        (Path("/dev/null"), "is a character device, not a file: name the file of public keys"),
        (binary, "is not text (not UTF-8): name the file of public keys"),
    ]:
        with pytest.raises(SettingsError) as caught:
            load_settings(encryption={"recipients_file": str(path)})
        (line,) = caught.value.lines
        assert line.startswith("setting encryption.recipients_file (argument): ")
        assert line.endswith(f"{path} {says}")
