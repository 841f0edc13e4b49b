"""Native encryption in the ZFS layer: the `encryption` property, its detection, `send -w`."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from zfs_offsite.zfs.commands import (
    estimate_send_size,
    list_argv,
    list_datasets,
    parse_list_output,
    send_argv,
    unknown_property,
)
from zfs_offsite.zfs.members import select_members
from zfs_offsite.zfs.model import ZfsFeatures
from zfs_offsite.zfs.runner import CommandFailed, CommandResult, Process

# The shape OpenZFS 2.3 answers `zfs get -H -p -r -o name,property,value ...,encryption`.
OPENZFS = """\
tank\ttype\tfilesystem
tank\tguid\t151
tank\tcreatetxg\t1
tank\tencryption\toff
tank/elabfs-enc\ttype\tfilesystem
tank/elabfs-enc\tguid\t566
tank/elabfs-enc\tcreatetxg\t6
tank/elabfs-enc\tencryption\taes-256-gcm
tank/elabfs-enc@s1\ttype\tsnapshot
tank/elabfs-enc@s1\tguid\t972
tank/elabfs-enc@s1\tcreatetxg\t12
tank/elabfs-enc@s1\tencryption\taes-256-gcm
tank/elabfs-plain\ttype\tfilesystem
tank/elabfs-plain\tguid\t9
tank/elabfs-plain\tcreatetxg\t20
tank/elabfs-plain\tencryption\toff
"""

# What zfs-fuse says (exit 2) to any `zfs get` naming `encryption`; its usage text follows.
ZFS_FUSE_STDERR = (
    "bad property list: invalid property 'encryption'\nusage:\n"
    '\tget [-rHp] [-d max] [-o "all" | field[,...]] [-s source[,...]]\n'
)


def test_encryption_property_reaches_dataset_and_member() -> None:
    datasets = parse_list_output(OPENZFS)
    assert datasets["tank/elabfs-enc"].encryption == "aes-256-gcm"
    assert datasets["tank/elabfs-enc"].natively_encrypted
    assert datasets["tank/elabfs-enc"].properties == {}  # not taken for a user property
    assert not datasets["tank/elabfs-plain"].natively_encrypted
    enc, plain = select_members(datasets, "tank", "elabfs-", [], None)
    assert (enc.name, enc.encryption, enc.natively_encrypted) == ("enc", "aes-256-gcm", True)
    assert (plain.encryption, plain.natively_encrypted) == ("off", False)


def test_send_argv_raw() -> None:
    assert send_argv("t/d@b", raw=True) == ["zfs", "send", "-w", "t/d@b"]
    assert send_argv("t/d@b", "t/d@a", raw=True) == ["zfs", "send", "-w", "-I", "t/d@a", "t/d@b"]
    assert send_argv("t/d@b", "t/d#m", intermediates=False, raw=True)[2:4] == ["-w", "-i"]
    assert "-w" not in send_argv("t/d@b", "t/d@a")


def test_list_argv_asks_for_encryption_only_when_told() -> None:
    assert (
        list_argv("tank", encryption=True)[-2] == "type,guid,createtxg,creation,userrefs,encryption"
    )
    assert "encryption" not in list_argv("tank")[-2]


class Replay:
    """A runner answering from a table: argv -> (exit status, stdout, stderr). Pure logic only."""

    host = "replay"

    def __init__(self, answers: dict[tuple[str, ...], tuple[int, str, str]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, ...]] = []

    def run(self, argv: Sequence[str], *, check: bool = True) -> CommandResult:
        self.calls.append(tuple(argv))
        code, out, err = self.answers[tuple(argv)]
        result = CommandResult(tuple(argv), code, out, err)
        if check and code != 0:
            raise CommandFailed(result)
        return result

    def start(self, argv: Sequence[str], *, stdin: bool = False) -> Process:
        raise NotImplementedError

    def close(self) -> None:
        pass


def test_zfs_without_the_property_is_asked_again_without_it() -> None:
    plain = parse_list_output(OPENZFS.replace("\tencryption\t", "\tx:y\t"))
    text = "".join(
        f"{name}\t{prop}\t{value}\n"
        for name, prop, value in (line.split("\t") for line in OPENZFS.splitlines())
        if prop != "encryption"
    )
    runner = Replay(
        {
            tuple(list_argv("tank", encryption=True)): (2, "", ZFS_FUSE_STDERR),
            tuple(list_argv("tank")): (0, text, ""),
        }
    )
    datasets = list_datasets(runner, "tank", with_encryption=True)
    assert len(runner.calls) == 2
    assert set(datasets) == set(plain)
    assert all(ds.encryption is None and not ds.natively_encrypted for ds in datasets.values())


def test_other_failures_of_the_listing_are_not_taken_for_a_missing_property() -> None:
    argv = tuple(list_argv("nope", encryption=True))
    runner = Replay({argv: (1, "", "cannot open 'nope': dataset does not exist\n")})
    with pytest.raises(CommandFailed, match="does not exist"):
        list_datasets(runner, "nope", with_encryption=True)
    assert len(runner.calls) == 1
    assert unknown_property(ZFS_FUSE_STDERR, "encryption")
    assert not unknown_property(ZFS_FUSE_STDERR, "guid")


def test_estimate_of_a_raw_send_asks_for_the_raw_stream() -> None:
    features = ZfsFeatures(version="2.3.2", send_estimate=True, bookmarks=True)
    argv = ("zfs", "send", "-nP", "-w", "-I", "t/d@a", "t/d@b")
    runner = Replay({argv: (0, "incremental\tt/d@a\tt/d@b\t4096\nsize\t4096\n", "")})
    assert estimate_send_size(runner, features, "t/d@b", "t/d@a", raw=True) == 4096
    assert runner.calls == [argv]
