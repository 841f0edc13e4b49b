"""A new age identity for `zfs-offsite keygen`: written once, private, never over a file.

Overwriting an identity would lose every backup encrypted to it, so the file is
created exclusively, mode 0600 whatever the umask, and the secret goes to the
file alone.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from pyrage import x25519

from zfs_offsite.keys.identities import IdentityError


def new_identity() -> tuple[str, str]:
    """A fresh X25519 identity: (secret key line, public key)."""
    identity = x25519.Identity.generate()
    return str(identity), str(identity.to_public())


def write_identity_file(path: Path) -> str:
    """Write a new identity to `path` (mode 0600, never over a file) in age-keygen's format.

    Returns the public key. The secret goes to the file alone: not to the caller,
    not to a log.
    """
    secret, public = new_identity()
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = f"# created: {created}\n# public key: {public}\n{secret}\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise IdentityError(
            f"{path} exists: keygen never overwrites an identity (the backups encrypted to it "
            "would be lost with it); name a new file"
        ) from None
    except OSError as exc:
        raise IdentityError(
            f"cannot create {path} ({exc.strerror}): name a writable path"
        ) from None
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)  # whatever the umask
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return public
