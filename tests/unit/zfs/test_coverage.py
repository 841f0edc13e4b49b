"""Coverage: every dataset below a selected one is a member or is listed as left out (pure)."""

from __future__ import annotations

import re

import pytest

from zfs_offsite.archive.names import (
    BackupName,
    Compression,
    below_destination,
    is_member_name,
    members_below,
    parse_backup_name,
)
from zfs_offsite.jobs.restore import below_note
from zfs_offsite.zfs.commands import parse_list_output
from zfs_offsite.zfs.members import (
    SKIP_PROPERTY,
    member_of_scratch,
    scratch_component,
    select,
)
from zfs_offsite.zfs.model import Dataset

# What a ZFS dataset name component may hold (OpenZFS zfs_namecheck.c: valid_char).
ZFS_COMPONENT = re.compile(r"[A-Za-z0-9_.: -]+")

# Recorded from OpenZFS 2.3.2 (the VM; pool renamed `tank`): the discovery's `zfs get -H -p
# -r -o name,property,value type,guid,createtxg,creation,userrefs,encryption,zfs-offsite:skip`
# after `zfs create -V 16M tank/elabfs-vm/disk0`, a snapshot of it, and
# `zfs create -V 8M -o zfs-offsite:skip=on tank/elabfs-vm/swap`: a zvol is `type volume`.
OPENZFS_WITH_ZVOL = """\
tank\ttype\tfilesystem
tank\tguid\t4435294749813110431
tank\tcreatetxg\t1
tank\tcreation\t1796619795
tank\tuserrefs\t-
tank\tencryption\toff
tank\tzfs-offsite:skip\t-
tank/elabfs-vm\ttype\tfilesystem
tank/elabfs-vm\tguid\t1233475605890561462
tank/elabfs-vm\tcreatetxg\t8
tank/elabfs-vm\tcreation\t1796619797
tank/elabfs-vm\tuserrefs\t-
tank/elabfs-vm\tencryption\toff
tank/elabfs-vm\tzfs-offsite:skip\t-
tank/elabfs-vm/disk0\ttype\tvolume
tank/elabfs-vm/disk0\tguid\t662762588896700842
tank/elabfs-vm/disk0\tcreatetxg\t9
tank/elabfs-vm/disk0\tcreation\t1796619798
tank/elabfs-vm/disk0\tuserrefs\t-
tank/elabfs-vm/disk0\tencryption\toff
tank/elabfs-vm/disk0\tzfs-offsite:skip\t-
tank/elabfs-vm/disk0@s1\ttype\tsnapshot
tank/elabfs-vm/disk0@s1\tguid\t3772012276470033339
tank/elabfs-vm/disk0@s1\tcreatetxg\t11
tank/elabfs-vm/disk0@s1\tcreation\t1796619800
tank/elabfs-vm/disk0@s1\tuserrefs\t0
tank/elabfs-vm/disk0@s1\tencryption\toff
tank/elabfs-vm/disk0@s1\tzfs-offsite:skip\t-
tank/elabfs-vm/swap\ttype\tvolume
tank/elabfs-vm/swap\tguid\t2508371104693487731
tank/elabfs-vm/swap\tcreatetxg\t12
tank/elabfs-vm/swap\tcreation\t1796619802
tank/elabfs-vm/swap\tuserrefs\t-
tank/elabfs-vm/swap\tencryption\toff
tank/elabfs-vm/swap\tzfs-offsite:skip\ton
"""


def datasets(spec: dict[str, dict[str, str]]) -> dict[str, Dataset]:
    return {name: Dataset(name, i, props) for i, (name, props) in enumerate(spec.items())}


NESTED = {
    "tank": {},
    "tank/elabfs-nest": {},
    "tank/elabfs-nest/sub": {},
    "tank/elabfs-nest/sub/deeper": {},
    "tank/elabfs-plain": {},
    "tank/other": {},
    "tank/other/elabfs-not-a-member": {},
}


def test_children_of_a_prefix_member_are_members_with_nested_names() -> None:
    chosen = select(datasets(NESTED), "tank", "elabfs-", [], None)
    assert [(m.name, m.dataset, m.dataset_part) for m in chosen.members] == [
        ("nest", "tank/elabfs-nest", "elabfs-nest"),
        ("nest~sub", "tank/elabfs-nest/sub", "elabfs-nest~sub"),
        ("nest~sub~deeper", "tank/elabfs-nest/sub/deeper", "elabfs-nest~sub~deeper"),
        ("plain", "tank/elabfs-plain", "elabfs-plain"),
    ]
    assert chosen.excluded == []
    assert all(m.error is None and is_member_name(m.name) for m in chosen.members)


def test_children_of_an_explicit_dataset_are_members() -> None:
    chosen = select(datasets(NESTED), "tank", "elabfs-", ["tank/elabfs-nest/sub"], None)
    assert [m.name for m in chosen.members] == ["nest~sub", "nest~sub~deeper"]


def test_skip_property_excludes_and_lists_it_and_its_inheriting_children() -> None:
    spec = {
        **NESTED,
        # `zfs set zfs-offsite:skip=on tank/elabfs-nest/sub`: `zfs get` shows it inherited below
        "tank/elabfs-nest/sub": {SKIP_PROPERTY: "on"},
        "tank/elabfs-nest/sub/deeper": {SKIP_PROPERTY: "on"},
    }
    chosen = select(datasets(spec), "tank", "elabfs-", [], None)
    assert [m.name for m in chosen.members] == ["nest", "plain"]
    assert [e.dataset for e in chosen.excluded] == [
        "tank/elabfs-nest/sub",
        "tank/elabfs-nest/sub/deeper",
    ]
    assert all(
        e.reason.startswith(f"not backed up: excluded by {SKIP_PROPERTY}=on")
        for e in chosen.excluded
    )
    # a child set back to off (`zfs set zfs-offsite:skip=off`) is backed up again
    spec["tank/elabfs-nest/sub/deeper"] = {SKIP_PROPERTY: "off"}
    again = select(datasets(spec), "tank", "elabfs-", [], None)
    assert [m.name for m in again.members] == ["nest", "nest~sub~deeper", "plain"]
    assert [e.dataset for e in again.excluded] == ["tank/elabfs-nest/sub"]


def test_select_property_off_below_a_selected_dataset_is_listed() -> None:
    prop = "zfs-offsite:backup"
    spec = {
        "tank": {prop: "-"},
        "tank/lab": {prop: "on"},
        "tank/lab/keep": {prop: "on"},  # inherited
        "tank/lab/tmp": {prop: "off"},
        "tank/else": {prop: "-"},
    }
    chosen = select(datasets(spec), "tank", "elabfs-", [], prop)
    assert [m.name for m in chosen.members] == ["lab", "lab~keep"]
    assert [(e.dataset, e.reason) for e in chosen.excluded] == [
        ("tank/lab/tmp", f"not backed up: excluded by {prop}=off below a selected dataset")
    ]


def test_the_drill_scratch_below_a_member_is_listed_not_backed_up() -> None:
    spec = {**NESTED, "tank/elabfs-nest/drill": {}, "tank/elabfs-nest/drill/nest": {}}
    chosen = select(datasets(spec), "tank", "elabfs-", [], None, scratch="tank/elabfs-nest/drill")
    assert "nest~drill" not in [m.name for m in chosen.members]
    assert [e.dataset for e in chosen.excluded] == [
        "tank/elabfs-nest/drill",
        "tank/elabfs-nest/drill/nest",
    ]
    assert "drill.scratch_dataset" in chosen.excluded[0].reason


def test_zvols_are_detected_and_backed_up_as_members() -> None:
    listed = parse_list_output(OPENZFS_WITH_ZVOL)
    assert listed["tank/elabfs-vm/disk0"].kind == "volume"
    assert listed["tank/elabfs-vm"].kind == "filesystem"
    assert [s.name for s in listed["tank/elabfs-vm/disk0"].snapshots] == ["s1"]
    assert listed["tank/elabfs-vm/disk0"].properties == {SKIP_PROPERTY: "-"}
    chosen = select(listed, "tank", "elabfs-", [], None)
    assert [(m.name, m.kind) for m in chosen.members] == [
        ("vm", "filesystem"),
        ("vm~disk0", "volume"),
    ]
    assert [(e.dataset, e.kind) for e in chosen.excluded] == [("tank/elabfs-vm/swap", "volume")]


@pytest.mark.parametrize(
    "member",
    ["alice", "nest~sub", "a:b", "a~:b", "a:~b", "a::b", "a~~b", "x:.y", "a.b-c_d e~f"],
)
def test_scratch_names_are_valid_zfs_names_and_round_trip(member: str) -> None:
    component = scratch_component(member)
    assert ZFS_COMPONENT.fullmatch(component), component
    assert member_of_scratch(component) == member


def test_scratch_names_keep_plain_members_and_never_collide() -> None:
    assert scratch_component("alice") == "alice"
    assert scratch_component("nest~sub") == "nest::sub"
    tricky = ["a~:b", "a:~b", "a::b", "a~~b", "a:.b", "a~.b", "a:b", "a~b"]
    assert len({scratch_component(m) for m in tricky}) == len(tricky)


def test_nested_backup_names_round_trip_through_file_names() -> None:
    for base in (None, "s1"):
        name = BackupName("elabfs-nest~sub", "s2", Compression.ZSTD, base=base)
        assert parse_backup_name(name.filename) == name


def test_members_below_and_where_they_go_when_the_parent_is_restored() -> None:
    archived = ["nest", "nest~sub", "nest~sub~deeper", "nesting", "nest-x~y", "alice"]
    assert members_below(archived, "nest") == ["nest~sub", "nest~sub~deeper"]
    assert members_below(archived, "nest~sub") == ["nest~sub~deeper"]
    assert members_below(archived, "alice") == []
    assert below_destination("nest", "nest~sub~deeper", "tank/r/nest") == "tank/r/nest/sub/deeper"
    note = below_note("nest", ["nest~sub"], "tank/r/nest")
    assert note.endswith("zfs-offsite restore 'nest~sub' tank/r/nest/sub")
