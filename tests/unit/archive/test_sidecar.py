"""Sidecars of encrypted files record recipients; older sidecars still parse."""

from __future__ import annotations

import json

import pytest

from zfs_offsite.archive.model import Sidecar

PLAIN = Sidecar("elabfs-a", "s1", 7, "zstd", "ab" * 32, 10, 20, "t0", "t1", "0.1")


def test_a_plain_sidecar_has_no_recipients_field_and_reads_back() -> None:
    assert "recipients" not in json.loads(PLAIN.to_json())
    assert Sidecar.from_json(PLAIN.to_json()) == PLAIN


def test_recipients_round_trip() -> None:
    sealed = Sidecar(**{**PLAIN.__dict__, "recipients": ("age1xyz", "SHA256:abc")})
    assert json.loads(sealed.to_json())["recipients"] == ["age1xyz", "SHA256:abc"]
    assert Sidecar.from_json(sealed.to_json()) == sealed


@pytest.mark.parametrize("value", ['"age1xyz"', "[1]", "null"])
def test_recipients_that_are_not_strings_are_one_line(value: str) -> None:
    raw = json.loads(PLAIN.to_json())
    raw["recipients"] = json.loads(value)
    with pytest.raises(ValueError, match=r"^field 'recipients' "):
        Sidecar.from_json(json.dumps(raw).encode())
