"""`zfs-offsite keygen` through the installed entry point; Debian's `age` reads its key."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

ZFS_OFFSITE = Path(sys.executable).parent / "zfs-offsite"


def keygen(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ZFS_OFFSITE), "keygen", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_keygen_prints_the_public_key_and_the_age_binary_uses_the_identity(
    tmp_path: Path,
) -> None:
    key = tmp_path / "restore.key"
    result = keygen(key)
    assert result.returncode == 0, result.stderr
    public = result.stdout.strip()
    assert public.startswith("age1") and result.stdout == public + "\n"
    secret = key.read_text().splitlines()[-1]
    assert secret.startswith("AGE-SECRET-KEY-1") and secret not in result.stderr
    assert "keep it off the NAS" in result.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    sealed = subprocess.run(
        ["age", "-e", "-r", public], input=b"hello", capture_output=True, check=True
    ).stdout
    opened = subprocess.run(
        ["age", "-d", "-i", str(key)], input=sealed, capture_output=True, check=True
    ).stdout
    assert opened == b"hello"

    again = keygen(key)
    assert again.returncode == 2 and again.stdout == ""
    assert again.stderr.strip().splitlines()[-1] == (
        f"error: {key} exists: keygen never overwrites an identity (the backups encrypted to "
        "it would be lost with it); name a new file"
    )
    assert key.read_text().splitlines()[-1] == secret
