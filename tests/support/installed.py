"""A scratch root for scripts/install.sh that its service users can reach, and their cleanup.

pytest's tmp directories are 0700 root: a unit's user (zfs-offsite, prefect) could not
even reach the venv there. The scratch root lies in /var/tmp, mode 0755, as /opt and
/var/lib are. install.sh creates the system users; the tests remove the ones they made.
"""

from __future__ import annotations

import contextlib
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

SERVICE_USERS = ("zfs-offsite", "prefect")  # the units' User=, as install.sh creates them


@contextlib.contextmanager
def install_root() -> Iterator[Path]:
    """A fresh directory for --prefix/--sysconfdir/--statedir, removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="srv-install-", dir="/var/tmp"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def existing_users() -> dict[str, bool]:
    """Which of the service users exist now (a later cleanup keeps those)."""
    found = {}
    for name in SERVICE_USERS:
        try:
            pwd.getpwnam(name)
            found[name] = True
        except KeyError:
            found[name] = False
    return found


def remove_new_users(before: dict[str, bool]) -> None:
    """userdel the service users that did not exist `before` (install.sh made them)."""
    for name, existed in before.items():
        if not existed:
            subprocess.run(["userdel", name], capture_output=True, check=False)
