"""Which datasets `restore --force` treats as live data (needs --destroy-live-dataset), pure."""

from __future__ import annotations

from zfs_offsite.archive.model import Sidecar
from zfs_offsite.zfs.destination import live_reason
from zfs_offsite.zfs.model import Snapshot


def snap(name: str, guid: int) -> Snapshot:
    return Snapshot("tank/restore/eve", name, guid, guid, guid)


ARCHIVED = {1, 2, 3}
MEMBERS = ["tank/elabfs-eve", "tank/elabfs-bob"]


def test_an_earlier_restore_is_replaceable() -> None:
    assert (
        live_reason("tank/restore/eve", [snap("s1", 1), snap("s3", 3)], "eve", ARCHIVED, MEMBERS)
        is None
    )


def test_a_member_or_a_dataset_inside_one_is_live_whatever_its_snapshots() -> None:
    archived_only = [snap("s1", 1)]
    assert live_reason("tank/elabfs-eve", archived_only, "eve", ARCHIVED, MEMBERS) == (
        "tank/elabfs-eve is a configured member"
    )
    assert live_reason("tank/elabfs-bob/x", archived_only, "eve", ARCHIVED, MEMBERS) == (
        "tank/elabfs-bob/x is inside member tank/elabfs-bob"
    )
    assert live_reason("tank/elabfs-eve2", archived_only, "eve", ARCHIVED, MEMBERS) is None


def test_a_snapshot_the_archive_lacks_or_none_at_all_is_live() -> None:
    mixed = [snap("s1", 1), snap("mine", 77)]
    assert live_reason("tank/restore/eve", mixed, "eve", ARCHIVED, MEMBERS) == (
        "tank/restore/eve holds snapshots that are not in eve's archive (mine)"
    )
    assert live_reason("tank/restore/eve", [], "eve", ARCHIVED, MEMBERS) == (
        "tank/restore/eve holds no snapshot from eve's archive"
    )


def test_sidecar_carries_round_trips_and_stays_absent_when_unknown() -> None:
    base = Sidecar("d", "s4", 4, "zstd", "0" * 64, 1, 1, "", "", "t", base="s1", base_guid=1)
    assert b"carries" not in base.to_json()
    assert Sidecar.from_json(base.to_json()).carries is None
    recorded = Sidecar(**{**base.__dict__, "carries": (("s2", 2), ("s3", 3))})
    assert b'"snapshot": "s2"' in recorded.to_json()
    assert Sidecar.from_json(recorded.to_json()).carries == (("s2", 2), ("s3", 3))
