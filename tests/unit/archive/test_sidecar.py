"""Sidecars of encrypted files record recipients; older sidecars still parse."""

from __future__ import annotations

import json

import pytest

from zfs_offsite.archive.model import Sidecar

AGE_KEY = "age1" + "q" * 58
SSH_FINGERPRINT = "SHA256:" + "A" * 43
PLAIN = Sidecar("elabfs-a", "s1", 7, "zstd", "ab" * 32, 10, 20, "t0", "t1", "0.1")


def test_a_plain_sidecar_has_no_recipients_field_and_reads_back() -> None:
    assert "recipients" not in json.loads(PLAIN.to_json())
    assert Sidecar.from_json(PLAIN.to_json()) == PLAIN


def test_recipients_round_trip() -> None:
    keys = (AGE_KEY, SSH_FINGERPRINT)
    sealed = Sidecar(**{**PLAIN.__dict__, "recipients": keys})
    assert json.loads(sealed.to_json())["recipients"] == list(keys)
    assert Sidecar.from_json(sealed.to_json()) == sealed


@pytest.mark.parametrize("value", ['"age1xyz"', "[1]", "null"])
def test_recipients_that_are_not_strings_are_one_line(value: str) -> None:
    raw = json.loads(PLAIN.to_json())
    raw["recipients"] = json.loads(value)
    with pytest.raises(ValueError, match=r"^field 'recipients' "):
        Sidecar.from_json(json.dumps(raw).encode())


def test_a_recipients_entry_that_is_no_fingerprint_makes_the_sidecar_unreadable() -> None:
    """Edited recipients end up in error lines: only the shapes this tool writes are read."""
    edited = json.loads(PLAIN.to_json())
    edited["recipients"] = [AGE_KEY, "evil\nsecond line"]
    with pytest.raises(ValueError, match=r"^field 'recipients' entry 2 is not a key fingerprint$"):
        Sidecar.from_json(json.dumps(edited).encode())
