"""The sidecar's `raw` field: written, read back, optional, and strictly a boolean."""

from __future__ import annotations

import json

import pytest

from zfs_offsite.archive.model import Sidecar

SIDECAR = Sidecar(
    dataset="tank/elabfs-a",
    snapshot="s1",
    snapshot_guid=7,
    compression="zstd",
    sha256="0" * 64,
    raw_bytes=1,
    stored_bytes=1,
    started="",
    finished="",
    tool_version="t",
)


def test_raw_round_trips_and_defaults_to_false() -> None:
    raw = Sidecar(**{**SIDECAR.__dict__, "raw": True})
    assert json.loads(raw.to_json())["raw"] is True
    assert Sidecar.from_json(raw.to_json()).raw is True
    fields = json.loads(SIDECAR.to_json())
    assert fields["raw"] is False
    del fields["raw"]  # sidecars written before raw sends existed
    assert Sidecar.from_json(json.dumps(fields).encode()).raw is False


@pytest.mark.parametrize(("value", "shown"), [(1, "1"), ("true", '"true"'), (None, "null")])
def test_raw_must_be_a_boolean(value: object, shown: str) -> None:
    fields = json.loads(SIDECAR.to_json()) | {"raw": value}
    with pytest.raises(ValueError, match=f"field 'raw' is {shown}, not true or false"):
        Sidecar.from_json(json.dumps(fields).encode())


def test_integer_fields_still_refuse_booleans() -> None:
    fields = json.loads(SIDECAR.to_json()) | {"target_guid": True}
    with pytest.raises(ValueError, match="field 'target_guid' is true, not an integer"):
        Sidecar.from_json(json.dumps(fields).encode())
