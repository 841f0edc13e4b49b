"""A snapshot carried inside an `-I` file: found through the sidecar's `carries`, pure."""

from __future__ import annotations

import dataclasses

import pytest

from tests.support.archive_files import at, member, new_file, seed_file
from zfs_offsite.archive.model import ArchiveFile
from zfs_offsite.errors import ChainError
from zfs_offsite.plan.chains import archived_guids, between, choose_restore_point


def carrying(file: ArchiveFile, carries: tuple[tuple[str, int], ...] | None) -> ArchiveFile:
    assert file.sidecar is not None
    return dataclasses.replace(file, sidecar=dataclasses.replace(file.sidecar, carries=carries))


def i_chain() -> tuple[list[ArchiveFile], tuple]:
    """s1 full, then one `-I s1 s4` file carrying s2 and s3."""
    s = member("s1", "s2", "s3", "s4").snapshots
    files = [
        at(carrying(new_file(s[0]), ()), 1),
        at(carrying(new_file(s[3], s[0]), between(s, s[0], s[3])), 2),
    ]
    return files, s


def test_between_lists_what_an_i_send_carries() -> None:
    s = member("s1", "s2", "s3", "s4").snapshots
    assert between(s, s[0], s[3]) == ((s[1].name, s[1].guid), (s[2].name, s[2].guid))
    assert between(s, s[2], s[3]) == ()


def test_snapshot_inside_an_i_file_restores_with_that_file_last() -> None:
    files, s = i_chain()
    point = choose_restore_point(files, "s3")
    assert point.snapshot == "s3"
    assert point.guid == s[2].guid
    assert [f.name.snapshot for f in point.chain] == ["s1", "s4"]
    assert point.inside == files[1].filename
    assert choose_restore_point(files, "s4").inside is None


def test_snapshot_in_no_file_says_so() -> None:
    files, _ = i_chain()
    with pytest.raises(ChainError) as caught:
        choose_restore_point(files, "nope")
    assert str(caught.value) == (
        "no backup file has snapshot nope, as its target or inside an -I file; "
        "restorable snapshots: s1, s4"
    )


@pytest.mark.parametrize("seed", [True, False], ids=["seed-era-no-sidecar", "sidecar-no-record"])
def test_a_file_that_cannot_say_what_it_carries_is_named(seed: bool) -> None:
    files, _ = i_chain()
    unknown = at(seed_file(files[1].filename), 2) if seed else carrying(files[1], None)
    files[1] = unknown
    with pytest.raises(ChainError) as caught:
        choose_restore_point(files, "s3")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(
        f"no backup file has snapshot s3 as its target, and {unknown.filename} cannot say "
        "which snapshots they carry"
    )


def test_carrier_with_a_broken_chain_names_the_missing_link() -> None:
    files, _ = i_chain()
    with pytest.raises(ChainError, match=r"s3 is inside .*needs a file whose target is s1"):
        choose_restore_point(files[1:], "s3")


def test_archived_guids_include_carried_snapshots() -> None:
    files, s = i_chain()
    assert archived_guids(files) == {snap.guid for snap in s}
    assert archived_guids([carrying(files[1], None)]) == {s[3].guid}
