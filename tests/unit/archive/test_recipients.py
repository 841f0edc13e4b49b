"""Public keys: what settings accept, and the fingerprints sidecars record."""

from __future__ import annotations

import pytest
from pyrage import x25519

from zfs_offsite.archive.recipients import parse_recipient, parse_recipients_text

# `ssh-keygen -lf` of this key prints SHA256:mY/wejXjrEo+7G5wprQekPVFEVIkqJgsnFCor0+rxmc.
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICW95WSZOKoGNcu/nElAida52SF1Yct/B8Ha5m5o8Zg2"
SSH_FINGERPRINT = "SHA256:mY/wejXjrEo+7G5wprQekPVFEVIkqJgsnFCor0+rxmc"


def test_an_age_key_is_its_own_fingerprint() -> None:
    public = str(x25519.Identity.generate().to_public())
    recipient = parse_recipient(f"  {public}\n")
    assert (recipient.key, recipient.fingerprint) == (public, public)
    assert isinstance(recipient.to_pyrage(), x25519.Recipient)


def test_an_ssh_key_has_ssh_keygens_fingerprint_and_loses_its_comment() -> None:
    recipient = parse_recipient(f"{SSH_KEY} admin@lab")
    assert recipient.key == SSH_KEY
    assert recipient.fingerprint == SSH_FINGERPRINT


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "an empty recipient"),
        ("age1qqqq", "is not an age public key"),
        ("ecdsa-sha2-nistp256 AAAAE2VjZHNh", "is not a key age can encrypt to"),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO6", "is not a valid ssh-ed25519 key"),
        ("AGE-SECRET-KEY-1QQQQ", "a secret key (AGE-SECRET-KEY-…) where a public key belongs"),
    ],
)
def test_a_bad_recipient_is_one_line_with_the_fix(text: str, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_recipient(text)
    message = str(caught.value)
    assert says in message and "\n" not in message
    assert "AGE-SECRET-KEY-1QQQQ" not in message  # a pasted secret is never echoed


def test_a_recipients_file_skips_comments_and_names_the_bad_line() -> None:
    public = str(x25519.Identity.generate().to_public())
    keys = parse_recipients_text(f"# lab keys\n\n{public}\n{SSH_KEY} x\n")
    assert [k.fingerprint for k in keys] == [public, SSH_FINGERPRINT]
    with pytest.raises(ValueError, match=r"^line 3: 'age1nope' is not an age public key"):
        parse_recipients_text(f"{public}\n# c\nage1nope\n")


@pytest.mark.parametrize(
    ("pasted", "says"),
    [
        ("age-secret-key-1qqqqsecretpart", "a secret key (AGE-SECRET-KEY-…) where a public key"),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktsecretpart\n",
            "a private key where a public key belongs: give its public key (the one-line .pub",
        ),
    ],
)
def test_a_pasted_secret_in_any_form_is_named_and_never_echoed(pasted: str, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_recipient(pasted)
    message = str(caught.value)
    assert says in message
    assert "secretpart" not in message and "qqqq" not in message and "b3Bl" not in message
