from __future__ import annotations

import pytest

from zfs_offsite.errors import ConfigError
from zfs_offsite.zfs.commands import (
    list_argv,
    parse_list_output,
    parse_send_estimate,
    parse_version,
    send_argv,
)
from zfs_offsite.zfs.members import select_members

# Recorded from zfs-fuse: `zfs get -H -p -r -o name,property,value type,guid,createtxg,creation`
OUTPUT = """\
tank\ttype\tfilesystem
tank\tguid\t151
tank\tcreatetxg\t1
tank\tcreation\t1700000000
tank/elabfs-alice\ttype\tfilesystem
tank/elabfs-alice\tguid\t566
tank/elabfs-alice\tcreatetxg\t6
tank/elabfs-alice\tcreation\t1700000001
tank/elabfs-alice@b-later-name-first\ttype\tsnapshot
tank/elabfs-alice@b-later-name-first\tguid\t972
tank/elabfs-alice@b-later-name-first\tcreatetxg\t12
tank/elabfs-alice@b-later-name-first\tcreation\t1700000002
tank/elabfs-alice@a-newest\ttype\tsnapshot
tank/elabfs-alice@a-newest\tguid\t492
tank/elabfs-alice@a-newest\tcreatetxg\t17
tank/elabfs-alice@a-newest\tcreation\t1700000003
tank/other\ttype\tfilesystem
tank/other\tguid\t9
tank/other\tcreatetxg\t20
tank/other\tcreation\t1700000004
tank/elabfs-bob\ttype\tfilesystem
tank/elabfs-bob\tguid\t10
tank/elabfs-bob\tcreatetxg\t21
tank/elabfs-bob\tcreation\t1700000004
tank/elabfs-bob/sub\ttype\tfilesystem
tank/elabfs-bob/sub\tguid\t11
tank/elabfs-bob/sub\tcreatetxg\t22
tank/elabfs-bob/sub\tcreation\t1700000004
"""


def test_snapshots_are_ordered_by_createtxg_not_name() -> None:
    datasets = parse_list_output(OUTPUT)
    alice = datasets["tank/elabfs-alice"]
    assert [s.name for s in alice.snapshots] == ["b-later-name-first", "a-newest"]
    assert alice.snapshots[-1].guid == 492
    assert alice.snapshots[-1].full_name == "tank/elabfs-alice@a-newest"


def test_prefix_selects_direct_children_and_what_is_below_them() -> None:
    members = select_members(parse_list_output(OUTPUT), "tank", "elabfs-", [], None)
    assert [(m.name, m.dataset_part) for m in members] == [
        ("alice", "elabfs-alice"),
        ("bob", "elabfs-bob"),
        ("bob~sub", "elabfs-bob~sub"),
    ]


def test_explicit_datasets_and_nested_names() -> None:
    members = select_members(
        parse_list_output(OUTPUT), "tank", "elabfs-", ["tank/elabfs-bob/sub"], None
    )
    assert [(m.name, m.dataset_part) for m in members] == [("bob~sub", "elabfs-bob~sub")]
    with pytest.raises(ConfigError, match="tank/nope does not exist"):
        select_members(parse_list_output(OUTPUT), "tank", "elabfs-", ["tank/nope"], None)


def test_user_property_selects() -> None:
    text = OUTPUT + "tank/other\tzfs-offsite:backup\ton\ntank/elabfs-bob\tzfs-offsite:backup\t-\n"
    members = select_members(parse_list_output(text), "tank", "elabfs-", [], "zfs-offsite:backup")
    assert [m.dataset for m in members] == ["tank/other"]


def test_argv_are_lists_without_shell() -> None:
    assert list_argv("tank", ["zfs-offsite:backup"])[-2:] == [
        "type,guid,createtxg,creation,userrefs,zfs-offsite:backup",
        "tank",
    ]
    assert send_argv("t/d@b") == ["zfs", "send", "t/d@b"]
    assert send_argv("t/d@b", "t/d@a") == ["zfs", "send", "-I", "t/d@a", "t/d@b"]
    assert send_argv("t/d@b", "t/d#bm", intermediates=False)[2] == "-i"


def test_version_and_estimate_parsing() -> None:
    assert parse_version("zfs-2.3.2-2~bpo12+2\nzfs-kmod-2.3.2-2~bpo12+2\n") == "2.3.2-2~bpo12+2"
    assert parse_version("unrecognized command 'version'") is None
    assert parse_send_estimate("full\ttank/a@1\t1234\nsize\t1234\n") == 1234
    assert parse_send_estimate("nothing") is None
