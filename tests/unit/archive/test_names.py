from __future__ import annotations

import pytest

from zfs_offsite.archive.names import (
    BackupName,
    Compression,
    Kind,
    check_member_name,
    classify,
    parse_backup_name,
)
from zfs_offsite.errors import ConfigError

SEED_FULL = "elabfs-LukasMetzler@auto-20190806.0200-1w.gz"
SEED_INC = (
    "elabfs-LukasMetzler@auto-20190806.0200-1w.to.elabfs-LukasMetzler@auto-20190807.0200-1w.gz"
)


def test_seed_full_name_round_trips() -> None:
    name = parse_backup_name(SEED_FULL)
    assert name == BackupName("elabfs-LukasMetzler", "auto-20190806.0200-1w", Compression.GZIP)
    assert name.filename == SEED_FULL


def test_seed_incremental_name_round_trips() -> None:
    name = parse_backup_name(SEED_INC)
    assert name is not None
    assert (name.base, name.snapshot) == ("auto-20190806.0200-1w", "auto-20190807.0200-1w")
    assert name.filename == SEED_INC


def test_zstd_suffix() -> None:
    name = BackupName("elabfs-a", "s.1", Compression.ZSTD, base="s.0")
    assert name.filename == "elabfs-a@s.0.to.elabfs-a@s.1.zst"
    assert parse_backup_name(name.filename) == name


def test_snapshot_names_containing_to_parse_on_at_signs() -> None:
    name = parse_backup_name("elabfs-a@x.to.y.to.elabfs-a@z.to.w.gz")
    assert name is not None and (name.base, name.snapshot) == ("x.to.y", "z.to.w")


@pytest.mark.parametrize(
    "filename",
    [
        "notes.txt",
        "elabfs-a@s1",  # no suffix
        "elabfs-a.gz",  # no snapshot
        "elabfs-a@s1.to.elabfs-b@s2.gz",  # dataset differs between base and target
        "elabfs-a@s1@s2.gz",
        "elabfs-a@../x.gz",
        "../elabfs-a@s1.gz",
    ],
)
def test_non_backup_names_do_not_parse(filename: str) -> None:
    assert parse_backup_name(filename) is None


def test_classify_sidecars_and_partials() -> None:
    assert classify(SEED_FULL + ".sha256")[0] is Kind.CHECKSUM
    assert classify(SEED_FULL + ".json")[0] is Kind.METADATA
    assert classify(SEED_FULL + ".partial")[0] is Kind.PARTIAL
    assert classify(SEED_FULL + ".json.partial")[0] is Kind.PARTIAL
    assert classify("foo.json")[0] is Kind.UNKNOWN
    assert classify(SEED_INC) == (Kind.BACKUP, parse_backup_name(SEED_INC))


def test_encrypted_names_put_age_after_the_compression() -> None:
    name = BackupName("elabfs-a", "s.1", Compression.ZSTD, base="s.0", encrypted=True)
    assert name.filename == "elabfs-a@s.0.to.elabfs-a@s.1.zst.age"
    assert parse_backup_name(name.filename) == name
    full = parse_backup_name("elabfs-a@s.0.gz.age")
    assert full == BackupName("elabfs-a", "s.0", Compression.GZIP, encrypted=True)
    assert parse_backup_name("elabfs-a@s.0.age") is None  # no compression suffix
    sidecar = classify("elabfs-a@s.0.zst.age.json")
    assert sidecar == (Kind.METADATA, BackupName("elabfs-a", "s.0", Compression.ZSTD, None, True))
    partial = classify("elabfs-a@s.0.zst.age.0123456789ab.partial")
    assert partial[0] is Kind.PARTIAL and partial[1] is not None and partial[1].encrypted


@pytest.mark.parametrize("name", ["ünï", ".hidden", "lost+found", "a/b", "..", "", "x\ny"])
def test_a_name_no_member_can_have_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_member_name(name, "member")
    assert str(caught.value).startswith(f"member {name!r} cannot name a member: ")
    assert "\n" not in str(caught.value)


def test_member_names_backup_can_give_pass() -> None:
    for name in ("alice", "LukasMetzler", "nest~sub", "a b", "x.y:z+1-2_3"):
        assert check_member_name(name, "member") == name
