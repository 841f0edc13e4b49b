"""The night's planning sequence: one member filter, one message, unusable members fail alone."""

from __future__ import annotations

import pytest

from zfs_offsite.errors import ConfigError
from zfs_offsite.jobs.plan_night import choose_members, plan_night
from zfs_offsite.plan.backup import BackupPlan
from zfs_offsite.settings import Settings, load_settings
from zfs_offsite.zfs.members import Excluded, Member, Selection

ALICE = Member("alice", "tank/elabfs-alice", "elabfs-alice", ())
BOB = Member("bob", "tank/elabfs-bob", "elabfs-bob", ())
BAD = Member("tank/elabfs-x/y", "tank/elabfs-x/y", "", (), error="tank/elabfs-x/y: cannot be one")
LEFT_OUT = Excluded("tank/elabfs-alice/cache", "zfs-offsite:skip=on")


@pytest.fixture
def settings(clean_settings_environment: None) -> Settings:
    return load_settings(source={"pool": "tank"})


def test_every_member_when_none_is_named() -> None:
    assert choose_members([ALICE, BOB], [], "tank") == [ALICE, BOB]
    assert choose_members([ALICE, BOB], ["bob"], "tank") == [BOB]


def test_an_unknown_name_is_one_line_naming_the_members_and_where_it_came_from() -> None:
    with pytest.raises(ConfigError) as command:
        choose_members([ALICE, BOB], ["zed", "amy"], "tank")
    assert str(command.value) == "no member named amy, zed in pool tank (members: alice, bob)"
    with pytest.raises(ConfigError) as flow:
        choose_members([ALICE, BOB], ["zed"], "tank", "parameter members:")
    assert str(flow.value).startswith("parameter members: no member named zed in pool tank")


def test_a_name_no_member_can_have_is_bad_input() -> None:
    with pytest.raises(ConfigError, match=r"^parameter members: '\.\.' cannot name a member"):
        choose_members([ALICE], [".."], "tank", "parameter members:")


def test_a_dataset_that_cannot_be_a_member_fails_alone_and_is_never_planned(
    settings: Settings,
) -> None:
    asked: list[list[str]] = []

    def plan(members: list[Member]) -> tuple[list[BackupPlan], dict[str, str]]:
        asked.append([m.name for m in members])
        return [], {"bob": "bob: the store said no"}

    night = plan_night(settings, [], lambda: Selection([ALICE, BAD, BOB], [LEFT_OUT]), plan)
    assert asked == [["alice", "bob"]]
    assert night.members == [ALICE, BAD, BOB]
    assert night.failed == {BAD.name: BAD.error, "bob": "bob: the store said no"}
    assert night.excluded == [LEFT_OUT]  # a whole night lists what it leaves out
    some = plan_night(settings, ["alice"], lambda: Selection([ALICE, BOB], [LEFT_OUT]), plan)
    assert (some.members, some.excluded) == ([ALICE], [])


def test_no_member_at_all_is_an_error_not_a_quiet_night(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="nothing would be backed up"):
        plan_night(settings, [], lambda: Selection([], [LEFT_OUT]), lambda ms: ([], {}))
