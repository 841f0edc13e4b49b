"""`zfs-offsite keygen`: a new age identity for encrypted backups; prints its public key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli import exit_codes, output


def keygen(
    identity_file: Annotated[
        Path,
        typer.Argument(help="Where to write the secret key (created 0600, never overwritten)."),
    ],
) -> None:
    """Write a new identity (secret key) and print its public key for encryption.recipients.

    Keep the identity off the NAS: backups need only the public key; restore and
    drill need the identity. Without it, encrypted backups cannot be read.
    """
    from zfs_offsite.keys.identities import IdentityError
    from zfs_offsite.keys.keygen import write_identity_file

    try:
        public = write_identity_file(identity_file)
    except IdentityError as exc:
        output.fail(str(exc), exit_codes.USAGE)
    output.info(
        f"identity written to {identity_file} (mode 0600): keep it off the NAS, with a copy "
        "somewhere safe; put the public key below in setting encryption.recipients"
    )
    output.out().print(public, highlight=False, markup=False)
