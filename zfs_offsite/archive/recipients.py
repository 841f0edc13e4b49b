"""age recipients (public keys): parsed, checked and fingerprinted.

The settings check every recipient with this module when they load, and the
sidecar records each recipient's fingerprint, so an admin can tell which key
opens a file without any secret on the backup server. Fingerprints are not
secret: an `age1…` key is its own fingerprint; an SSH key's is the
`SHA256:…` that `ssh-keygen -lf key.pub` prints.

Parsing uses pyrage's own parsers, so a key accepted here is one the encryptor
accepts. No I/O: reading a recipients file is the caller's job.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from pyrage import RecipientError, ssh, x25519

X25519_PREFIX = "age1"
SSH_TYPES = ("ssh-ed25519", "ssh-rsa")
FIX = "give an age1… public key (zfs-offsite keygen, age-keygen) or an ssh-ed25519/ssh-rsa line"


@dataclass(frozen=True)
class Recipient:
    """One public key the stored bytes are encrypted to."""

    key: str  # the key as age reads it: `age1…`, or `ssh-ed25519 AAAA…` without its comment
    fingerprint: str

    def to_pyrage(self) -> x25519.Recipient | ssh.Recipient:
        if self.key.startswith(X25519_PREFIX):
            return x25519.Recipient.from_str(self.key)
        return ssh.Recipient.from_str(self.key)


def _shown(text: str) -> str:
    return text if len(text) <= 24 else text[:21] + "..."


def parse_recipient(text: str) -> Recipient:
    """A recipient from one line; ValueError with one line naming what is wrong and the fix."""
    text = text.strip()
    fields = text.split()
    if not fields:
        raise ValueError(f"an empty recipient: {FIX}")
    if fields[0].startswith(X25519_PREFIX) and len(fields) == 1:
        try:
            x25519.Recipient.from_str(text)
        except RecipientError as exc:
            raise ValueError(f"{_shown(text)!r} is not an age public key ({exc}): {FIX}") from None
        return Recipient(text, text)
    # Checked before anything is echoed: a pasted secret, in any case, is never shown.
    if fields[0].upper().startswith("AGE-SECRET-KEY-"):
        raise ValueError(
            "a secret key (AGE-SECRET-KEY-…) where a public key belongs: give its public key "
            "(the '# public key:' line of the identity file) and keep the secret off this host"
        )
    if fields[0].startswith("-----BEGIN") or "PRIVATE KEY" in text:
        raise ValueError(
            "a private key where a public key belongs: give its public key (the one-line "
            ".pub file) and keep the private key off this host"
        )
    if fields[0] not in SSH_TYPES:
        raise ValueError(f"{_shown(text)!r} is not a key age can encrypt to: {FIX}")
    key = " ".join(fields[:2])
    try:
        ssh.Recipient.from_str(key)
        blob = base64.b64decode(fields[1], validate=True)
    except (RecipientError, IndexError, binascii.Error) as exc:
        raise ValueError(
            f"{_shown(text)!r} is not a valid {fields[0]} key ({exc}): {FIX}"
        ) from None
    return Recipient(key, ssh_fingerprint(blob))


def ssh_fingerprint(blob: bytes) -> str:
    """`SHA256:<base64, unpadded>` of the key blob: what `ssh-keygen -lf` prints."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def parse_recipients_text(text: str) -> list[Recipient]:
    """Every recipient of a recipients file (one a line, `#` comments): age's own format.

    ValueError names the line: "line 3: …".
    """
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            found.append(parse_recipient(line))
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None
    return found
