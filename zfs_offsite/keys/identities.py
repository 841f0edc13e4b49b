"""Identities (age secret keys) for reading encrypted backups back: loaded, checked, named.

An identity file is the one secret the tool reads: age's `AGE-SECRET-KEY-1…`
lines (zfs-offsite keygen, age-keygen) or an OpenSSH private key. It is
checked as OpenSSH checks a private key file (a file, not a public key,
readable by its owner alone) and every error names the setting and the fix,
never the file's content or its passphrase. The decrypting stage
(stream/encryption.py) uses the identities; the public side, the recipients a
backup is encrypted to, is archive/recipients.py.
"""

from __future__ import annotations

import base64
import contextlib
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyrage
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from pyrage import ssh, x25519

from zfs_offsite.archive.recipients import ssh_fingerprint
from zfs_offsite.errors import ConfigError
from zfs_offsite.file_kind import path_kind
from zfs_offsite.settings import EncryptionSettings

Identity = Any  # pyrage.x25519.Identity | pyrage.ssh.Identity (pyrage ships no type hints)


class IdentityError(ConfigError):
    """The identity (secret key) is missing, unreadable, or opens none of a file's recipients."""


_PROTECTED_FIX = (
    "is a passphrase-protected SSH key: set encryption.identity_passphrase in the environment "
    "(ZFS_OFFSITE_ENCRYPTION__IDENTITY_PASSPHRASE), or point encryption.identity_file at an "
    "unprotected copy kept off the NAS (ssh-keygen -p -N '' -f <copy>)"
)


def _unlocked(data: bytes, passphrase: str, setting: str) -> bytes:
    """An OpenSSH private key without its passphrase, in memory only (age cannot ask for one)."""
    try:
        key = serialization.load_ssh_private_key(data, passphrase.encode())
    except (ValueError, TypeError):
        raise IdentityError(
            f"{setting}: setting encryption.identity_passphrase does not unlock it "
            "(wrong passphrase, or not an OpenSSH private key)"
        ) from None
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )


# The public key (as the sidecar records it) of each SSH identity loaded here, by id();
# pyrage's SSH identity cannot say it, and error messages need it. The identity is kept
# in the value so its id() is never reused while listed.
_SSH_KEYS: dict[int, tuple[Identity, str]] = {}


def identity_keys(identities: Sequence[Identity]) -> list[str]:
    """The public keys of `identities` as a sidecar lists recipients (`age1…`, `SHA256:…`)."""
    keys = []
    for identity in identities:
        if isinstance(identity, x25519.Identity):
            keys.append(str(identity.to_public()))
        elif (entry := _SSH_KEYS.get(id(identity))) is not None and entry[0] is identity:
            keys.append(entry[1])
    return keys


def _ssh_identity(data: bytes) -> Identity:
    """An unencrypted SSH private key as a pyrage identity, its fingerprint noted."""
    identity = ssh.Identity.from_buffer(data)
    with contextlib.suppress(ValueError, TypeError, UnsupportedAlgorithm):
        key: Any = (
            serialization.load_ssh_private_key(data, None)
            if b"OPENSSH PRIVATE KEY" in data
            else serialization.load_pem_private_key(data, None)
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        blob = base64.b64decode(public.split()[1])
        _SSH_KEYS[id(identity)] = (identity, ssh_fingerprint(blob))
    return identity


def _identity_bytes(path: Path, setting: str) -> bytes:
    """The identity file's bytes, after the checks OpenSSH makes of a private key file."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise IdentityError(
            f"{setting} does not exist: name the identity file written by zfs-offsite keygen "
            "(or age-keygen)"
        ) from None
    except OSError as exc:
        raise IdentityError(f"{setting} cannot be read ({exc.strerror}): fix its access") from None
    if not stat.S_ISREG(info.st_mode):
        raise IdentityError(
            f"{setting} is {path_kind(info.st_mode)}, not a file: name the identity "
            "(secret key) file"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IdentityError(f"{setting} cannot be read ({exc.strerror}): fix its access") from None
    if data.lstrip().startswith((b"ssh-", b"age1")):
        raise IdentityError(
            f"{setting} is a public key: name the secret key that goes with it (the SSH key "
            "file without .pub, or the file zfs-offsite keygen wrote)"
        )
    # A secret others may read is no longer only ours; refuse it, as OpenSSH does its keys.
    if info.st_uid == os.getuid() and info.st_mode & 0o077:
        raise IdentityError(
            f"{setting} is accessible by others (mode {stat.S_IMODE(info.st_mode):04o}): "
            f"chmod 600 {path}"
        )
    return data


def load_identities(path: Path, passphrase: str | None = None) -> list[Identity]:
    """The secret keys of an identity file: age (`AGE-SECRET-KEY-1…` lines) or an SSH key.

    A passphrase-protected SSH key is unlocked with `passphrase`. Errors name the
    setting and the fix, never the file's content or the passphrase.
    """
    setting = f"setting encryption.identity_file: {path}"
    data = _identity_bytes(path, setting)
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            return [_ssh_identity(data)]
        except pyrage.IdentityError as exc:
            if "decrypted" not in str(exc):
                raise IdentityError(f"{setting} is not an SSH private key age can use") from None
        if passphrase is None:
            raise IdentityError(f"{setting} {_PROTECTED_FIX}")
        try:
            return [_ssh_identity(_unlocked(data, passphrase, setting))]
        except pyrage.IdentityError:
            raise IdentityError(f"{setting} is not an SSH private key age can use") from None
    identities = []
    for number, raw in enumerate(data.decode(errors="replace").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise IdentityError(
                f"{setting} line {number} is not an age secret key (AGE-SECRET-KEY-1…): "
                "name the file zfs-offsite keygen wrote"
            ) from None
    if not identities:
        raise IdentityError(
            f"{setting} holds no secret key: name the file zfs-offsite keygen wrote"
        )
    return identities


def configured_identities(settings: EncryptionSettings) -> list[Identity] | None:
    """The identities of `encryption.identity_file`, or None where none is set."""
    if settings.identity_file is None:
        return None
    secret = settings.identity_passphrase
    return load_identities(settings.identity_file, secret.get_secret_value() if secret else None)
