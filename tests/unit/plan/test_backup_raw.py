"""Raw sends in the planner: which datasets go raw, and chains that never mix raw and plain."""

from __future__ import annotations

import dataclasses

import pytest

from tests.support.archive_files import member, new_file
from zfs_offsite.archive.names import Compression
from zfs_offsite.errors import ChainError
from zfs_offsite.plan.backup import Action, plan_backup, sends_raw, superseded
from zfs_offsite.plan.chains import choose_restore_point, restore_chains
from zfs_offsite.zfs.model import Bookmark

GCM = "aes-256-gcm"


@pytest.mark.parametrize(
    ("encryption", "raw_send", "raw"),
    [
        (GCM, "auto", True),
        ("aes-128-ccm", "auto", True),
        (GCM, "never", False),
        ("off", "auto", False),  # OpenZFS, dataset not encrypted
        (None, "auto", False),  # zfs-fuse: no `encryption` property at all
    ],
)
def test_raw_only_for_natively_encrypted_datasets(
    encryption: str | None, raw_send: str, raw: bool
) -> None:
    m = member("s1", encryption=encryption)
    assert sends_raw(m, raw_send) is raw
    plan = plan_backup(m, [], Compression.ZSTD, raw_send=raw_send)
    assert plan.action is Action.FULL and plan.raw is raw
    assert plan.filename == "elabfs-a@s1.zst"  # raw-ness is in the sidecar, not the name


def test_raw_chain_is_continued_raw() -> None:
    m = member("s1", "s2", "s3", encryption=GCM)
    s1, s2, s3 = m.snapshots
    files = [new_file(s1, raw=True), new_file(s2, s1, raw=True)]
    plan = plan_backup(m, files, Compression.ZSTD)
    assert plan.action is Action.INCREMENTAL and plan.raw
    assert plan.reason.endswith("; sent raw (zfs send -w), encrypted with the dataset's own key")
    assert (
        plan.base == s2
        and plan.snapshot == s3
        and plan.filename == "elabfs-a@s2.to.elabfs-a@s3.zst"
    )


def test_plain_chain_of_an_encrypted_dataset_is_not_continued_raw() -> None:
    m = member("s1", "s2", encryption=GCM)
    s1, _ = m.snapshots
    plan = plan_backup(m, [new_file(s1)], Compression.ZSTD)
    assert plan.action is Action.FULL and plan.raw and plan.base is None
    assert "now sent raw" in plan.reason and "raw chain starts with a full" in plan.reason
    # With raw sends off, the same plain chain goes on as before.
    plain = plan_backup(m, [new_file(s1)], Compression.ZSTD, raw_send="never")
    assert plain.action is Action.INCREMENTAL and not plain.raw and plain.base == s1
    assert "raw" not in plain.reason


def test_raw_chain_is_not_continued_plain() -> None:
    m = member("s1", "s2", encryption=GCM)
    s1, _ = m.snapshots
    plan = plan_backup(m, [new_file(s1, raw=True)], Compression.ZSTD, raw_send="never")
    assert plan.action is Action.FULL and not plan.raw
    assert "chain is raw and source.raw_send is never" in plan.reason
    off = dataclasses.replace(m, encryption="off")
    assert (
        "it is not encrypted" in plan_backup(off, [new_file(s1, raw=True)], Compression.ZSTD).reason
    )


def test_newest_archived_of_the_other_kind_is_up_to_date() -> None:
    """Switching kinds does not send a snapshot the archive can already restore."""
    m = member("s1", encryption=GCM)
    plan = plan_backup(m, [new_file(m.snapshots[0])], Compression.ZSTD)
    assert plan.action is Action.UP_TO_DATE


def test_bookmark_base_only_of_the_same_kind() -> None:
    m = member("s1", "s2", encryption=GCM)
    s1, s2 = m.snapshots
    mark = Bookmark(s1.dataset, "zfs-offsite-ab_s1", s1.guid, s1.createtxg, s1.creation)
    gone = dataclasses.replace(m, snapshots=(s2,), bookmarks=(mark,))  # NAS destroyed s1
    raw = plan_backup(gone, [new_file(s1, raw=True)], Compression.ZSTD)
    assert raw.action is Action.INCREMENTAL and raw.raw
    assert raw.send_from == "tank/elabfs-a#zfs-offsite-ab_s1"
    plain = plan_backup(gone, [new_file(s1)], Compression.ZSTD)
    assert plain.action is Action.FULL and plain.raw and plain.send_from is None


def test_restore_chains_never_mix_raw_and_plain() -> None:
    m = member("s1", "s2")
    s1, s2 = m.snapshots
    for full_raw in (True, False):
        files = [new_file(s1, raw=full_raw), new_file(s2, s1, raw=not full_raw)]
        assert list(restore_chains(files)) == ["elabfs-a@s1.zst"]
        with pytest.raises(ChainError) as caught:
            choose_restore_point(files, "s2")
        mine, theirs = ("a plain send", "a raw send") if full_raw else ("a raw send", "a plain")
        assert f"elabfs-a@s1.to.elabfs-a@s2.zst is {mine}" in str(caught.value)
        assert f"its base elabfs-a@s1.zst is {theirs}" in str(caught.value)
        assert "cannot mix them in one chain" in str(caught.value)
    same = [new_file(s1, raw=True), new_file(s2, s1, raw=True)]
    point = choose_restore_point(same, "s2")
    assert [f.filename for f in point.chain] == [
        "elabfs-a@s1.zst",
        "elabfs-a@s1.to.elabfs-a@s2.zst",
    ]


def test_raw_plan_is_superseded_when_only_a_plain_base_is_left() -> None:
    m = member("s1", "s2", encryption=GCM)
    s1, _ = m.snapshots
    plan = plan_backup(m, [new_file(s1, raw=True)], Compression.ZSTD)
    assert plan.action is Action.INCREMENTAL and plan.raw
    assert superseded(plan, [new_file(s1, raw=True)]) is None
    assert (
        superseded(plan, [new_file(s1)]) == "the base s1 is no longer restorable from the archive"
    )


@pytest.mark.parametrize(
    ("encryption", "age_raw_sends", "filename"),
    [
        (None, False, "elabfs-a@s1.zst.age"),  # not natively encrypted: age
        (GCM, False, "elabfs-a@s1.zst"),  # raw: stored as sent, the dataset's key
        (GCM, True, "elabfs-a@s1.zst.age"),  # both, where configured
    ],
)
def test_age_for_the_rest_and_on_raw_sends_only_where_configured(
    encryption: str | None, age_raw_sends: bool, filename: str
) -> None:
    m = member("s1", encryption=encryption)
    plan = plan_backup(m, [], Compression.ZSTD, encrypted=True, age_raw_sends=age_raw_sends)
    assert plan.filename == filename
    assert plan.raw is (encryption is not None)
