"""The archive record on the source: its name, how discovery reads it, when it is set (pure).

The real `zfs get`/`zfs set` are exercised in tests/faults/test_unmounted_disk.py
(zfs-fuse) and tests/openzfs/test_archive_identity.py (the VM).
"""

from __future__ import annotations

import dataclasses
import logging
import re

import pytest

from tests.support.archive_files import member
from zfs_offsite.zfs.commands import get_property_argv, parse_list_output, set_property_argv
from zfs_offsite.zfs.members import select
from zfs_offsite.zfs.protect import mark_tag, marked_before
from zfs_offsite.zfs.record import record_archive, record_property, recorded
from zfs_offsite.zfs.runner import CommandResult

# ZFS user property names (zfs_prop_user / zfsprops(7)): a colon, lowercase letters, digits
# and `:-._`, shorter than ZAP_MAXNAMELEN (256).
USER_PROPERTY = re.compile(r"[a-z0-9:._-]*:[a-z0-9:._-]*")
URL = "file:///mnt/usb/archive"


@pytest.mark.parametrize(
    "url", [URL, "sftp://Backup@NAS.Example.org:2222/Srv/ARCHIVE", "file:///ünï/x y"]
)
def test_the_record_name_is_a_valid_user_property_per_target(url: str) -> None:
    prop = record_property(url)
    assert USER_PROPERTY.fullmatch(prop) and len(prop) < 256
    assert prop.startswith("zfs-offsite:archive-")
    # The same target's marks and record share one hash; another target gets another.
    assert prop.rsplit("-", 1)[1] == mark_tag(url).rsplit("-", 1)[1]
    assert record_property(url + "2") != prop


def test_argv_sets_and_reads_one_property_of_one_dataset() -> None:
    prop = record_property(URL)
    assert set_property_argv("tank/a", prop, "id-1") == ["zfs", "set", f"{prop}=id-1", "tank/a"]
    assert get_property_argv(prop, "tank/a") == ["zfs", "get", "-H", "-o", "value", prop, "tank/a"]


def listing(value: str, prop: str) -> str:
    """`zfs get -H -p -o name,property,value` of one dataset as discovery asks for it."""
    return "".join(
        f"tank/elabfs-a\t{p}\t{v}\n"
        for p, v in [("type", "filesystem"), ("guid", "7"), ("createtxg", "1"), (prop, value)]
    )


def test_discovery_reads_the_record_and_an_unset_one_is_none() -> None:
    prop = record_property(URL)
    for value, expected in [("0b9e-id", "0b9e-id"), ("-", None)]:
        datasets = parse_list_output(listing(value, prop))
        (found,) = select(datasets, "tank", "elabfs-", [], None).members
        assert recorded(found, prop) == expected
        assert recorded(found, record_property("file:///other")) is None


def test_the_record_is_evidence_of_this_target_only_without_any_mark() -> None:
    prop = record_property(URL)
    m = dataclasses.replace(member("s1", "s2"), archives=((prop, "0b9e-id"),))
    no_zfs = None  # no snapshot is held: marked_before must not call zfs at all
    said = marked_before(no_zfs, [m], mark_tag(URL), prop)  # type: ignore[arg-type]
    assert said == f"tank/elabfs-a ({prop}=0b9e-id)"
    other = record_property("file:///mnt/other")
    assert marked_before(no_zfs, [m], mark_tag(URL), other) is None  # type: ignore[arg-type]


class Props:
    """`zfs get`/`zfs set` of user properties answered from a dict: the rule, not zfs."""

    def __init__(self, value: str, *, may_set: bool = True) -> None:
        self.value, self.may_set = value, may_set
        self.sets: list[list[str]] = []

    def run(self, argv: list[str], *, check: bool = True) -> CommandResult:
        if argv[1] == "get":
            return CommandResult(tuple(argv), 0, self.value + "\n", "")
        self.sets.append(argv)
        if not self.may_set:
            return CommandResult(tuple(argv), 1, "", "cannot set property: permission denied")
        self.value = argv[2].partition("=")[2]
        return CommandResult(tuple(argv), 0, "", "")


def test_set_only_when_missing_or_different_and_say_when_different(
    caplog: pytest.LogCaptureFixture,
) -> None:
    prop = record_property(URL)
    missing = Props("-")
    assert record_archive(missing, "tank/a", prop, "id-1") == f"recorded {prop}"  # type: ignore[arg-type]
    assert missing.value == "id-1" and len(missing.sets) == 1
    assert record_archive(missing, "tank/a", prop, "id-1") == "recorded already"  # type: ignore[arg-type]
    assert len(missing.sets) == 1  # no second `zfs set` for the same id
    with caplog.at_level(logging.INFO):
        record_archive(missing, "tank/a", prop, "id-2")  # type: ignore[arg-type]
    assert missing.value == "id-2"  # a rotated disk is recorded, not refused
    assert "last backed up to archive id-1" in caplog.text and "id-2" in caplog.text


def test_a_login_that_may_not_set_properties_gets_a_warning_not_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    appliance = Props("-", may_set=False)
    with caplog.at_level(logging.WARNING):
        done = record_archive(appliance, "tank/a", record_property(URL), "id-1")  # type: ignore[arg-type]
    assert done.startswith("failed: ") and "permission denied" in done
    assert "could not be set" in caplog.text and "tank/a" in caplog.text
