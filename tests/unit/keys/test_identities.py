"""Identity files: keygen writes one once, privately; loading one refuses what OpenSSH would.

Every error names the setting and the fix, never the key file's content or its passphrase.
"""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pyrage
import pytest

from zfs_offsite.keys.identities import IdentityError, load_identities
from zfs_offsite.keys.keygen import write_identity_file


def test_keygen_writes_a_private_file_once(tmp_path: Path) -> None:
    path = tmp_path / "key.txt"
    public = write_identity_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = path.read_text().splitlines()
    assert lines[1] == f"# public key: {public}" and lines[2].startswith("AGE-SECRET-KEY-1")
    (identity,) = load_identities(path)
    assert str(identity.to_public()) == public
    with pytest.raises(IdentityError, match="exists: keygen never overwrites an identity"):
        write_identity_file(path)
    assert path.read_text().splitlines() == lines


def test_identity_file_errors_name_the_setting_and_never_the_content(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(IdentityError, match=r"identity_file: .*nope does not exist: name the"):
        load_identities(missing)
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("# a comment\nAGE-SECRET-KEY-1-not-really-a-key\n")
    wrong.chmod(0o600)
    with pytest.raises(IdentityError) as caught:
        load_identities(wrong)
    assert "line 2 is not an age secret key" in str(caught.value)
    assert "not-really" not in str(caught.value)


def test_a_passphrase_protected_ssh_key_names_the_fix(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret pw", "-f", str(key)], check=True
    )
    with pytest.raises(IdentityError, match=r"passphrase-protected SSH key: set encryption\.id"):
        load_identities(key)
    with pytest.raises(IdentityError) as caught:
        load_identities(key, "not it")
    assert "identity_passphrase does not unlock it" in str(caught.value)
    assert "not it" not in str(caught.value)
    public = (tmp_path / "id_ed25519.pub").read_text()
    sealed = pyrage.encrypt(b"lab data", [pyrage.ssh.Recipient.from_str(public)])
    assert pyrage.decrypt(sealed, load_identities(key, "secret pw")) == b"lab data"


def test_an_identity_others_can_read_or_a_public_key_is_refused_with_the_fix(
    tmp_path: Path,
) -> None:
    key = tmp_path / "key.txt"
    write_identity_file(key)
    key.chmod(0o644)
    with pytest.raises(IdentityError) as caught:
        load_identities(key)
    assert str(caught.value) == (
        f"setting encryption.identity_file: {key} is accessible by others (mode 0644): "
        f"chmod 600 {key}"
    )
    key.chmod(0o600)
    assert load_identities(key)
    with pytest.raises(IdentityError, match=r"is a directory, not a file: name the identity"):
        load_identities(tmp_path)
    ssh_key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh_key)], check=True)
    with pytest.raises(IdentityError, match=r"\.pub is a public key: name the secret key"):
        load_identities(tmp_path / "id_ed25519.pub")
