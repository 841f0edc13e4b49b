"""Which holds and bookmarks a run releases: pure, over hand-built members."""

from __future__ import annotations

import dataclasses

from tests.support.archive_files import member
from zfs_offsite.zfs.members import Member
from zfs_offsite.zfs.model import Bookmark
from zfs_offsite.zfs.protect import marked_before, stale_marks
from zfs_offsite.zfs.runner import CommandResult


def test_stale_marks_are_other_held_snapshots_and_our_bookmarks() -> None:
    m = member("s1", "s2", "s3")
    s1, s2, s3 = m.snapshots
    held = dataclasses.replace(s1, userrefs=1)
    ours = Bookmark(s1.dataset, "zfs-offsite-ab_s1", s1.guid, s1.createtxg, s1.creation)
    theirs = Bookmark(s1.dataset, "other_s1", s1.guid, s1.createtxg, s1.creation)
    m = dataclasses.replace(m, snapshots=(held, s2, s3), bookmarks=(ours, theirs))
    assert stale_marks(m, "zfs-offsite-ab", s3) == (
        "tank/elabfs-a@s1",
        "tank/elabfs-a#zfs-offsite-ab_s1",
    )


class HoldsAnswer:
    """`zfs holds`/`hold`/`release` answered from a table: the rule's logic, not zfs's."""

    def __init__(self, holds: dict[str, set[str]] | None) -> None:
        self.holds = holds  # None: `zfs holds` fails (zfs-fuse); then `zfs hold` answers
        self.calls: list[tuple[str, ...]] = []

    def run(self, argv: list[str], *, check: bool = True) -> CommandResult:
        self.calls.append(tuple(argv))
        verb, *rest = argv[1:]
        if verb == "holds":
            if self.holds is None:
                return CommandResult(tuple(argv), 255, "", "internal error: pyzfs.py not found")
            lines = "".join(f"{rest[-1]}\t{t}\tnow\n" for t in self.holds.get(rest[-1], ()))
            return CommandResult(tuple(argv), 0, lines, "")
        tag, snap = rest
        if verb == "hold" and tag in TAGS_ON.get(snap, set()):
            return CommandResult(tuple(argv), 1, "", "cannot hold: tag already exists")
        return CommandResult(tuple(argv), 0, "", "")


TAGS_ON = {"tank/elabfs-a@s1": {"zfs-offsite-ab"}}


def test_evidence_is_our_bookmark_or_our_hold_never_anothers() -> None:
    m = member("s1", "s2")
    s1, s2 = m.snapshots
    ours = Bookmark(s1.dataset, "zfs-offsite-ab_s1", s1.guid, s1.createtxg, s1.creation)
    theirs = Bookmark(s1.dataset, "zfs-offsite-cd_s1", s1.guid, s1.createtxg, s1.creation)
    quiet = HoldsAnswer({})
    assert (
        marked_before(quiet, [dataclasses.replace(m, bookmarks=(theirs,))], "zfs-offsite-ab")
        is None
    )  # type: ignore[arg-type]
    said = marked_before(
        quiet, [dataclasses.replace(m, bookmarks=(theirs, ours))], "zfs-offsite-ab"
    )  # type: ignore[arg-type]
    assert said == "tank/elabfs-a (bookmark #zfs-offsite-ab_s1)"

    held = dataclasses.replace(m, snapshots=(dataclasses.replace(s1, userrefs=1), s2))
    listed = HoldsAnswer({"tank/elabfs-a@s1": {"zfs-offsite-ab"}})
    assert marked_before(listed, [held], "zfs-offsite-ab") == (  # type: ignore[arg-type]
        "tank/elabfs-a (hold zfs-offsite-ab on @s1)"
    )
    assert marked_before(listed, [held], "zfs-offsite-cd") is None  # type: ignore[arg-type]


def test_where_holds_cannot_be_listed_a_probe_hold_is_released_at_once() -> None:
    m = member("s1", "s2")
    s1, s2 = m.snapshots
    held = dataclasses.replace(m, snapshots=(dataclasses.replace(s1, userrefs=1), s2))
    fuse = HoldsAnswer(None)
    assert marked_before(fuse, [held], "zfs-offsite-ab") is not None  # type: ignore[arg-type]
    assert ("zfs", "release", "zfs-offsite-ab", "tank/elabfs-a@s1") not in fuse.calls
    fuse = HoldsAnswer(None)
    assert marked_before(fuse, [held], "zfs-offsite-cd") is None  # type: ignore[arg-type]
    assert fuse.calls[-1] == ("zfs", "release", "zfs-offsite-cd", "tank/elabfs-a@s1")


def test_evidence_over_several_members_names_one_and_counts_the_others() -> None:
    """One root-level line, read by every member: true for bob even where it names alice."""
    a = member("s1", "s2")
    s1 = a.snapshots[0]

    def marked(name: str) -> Member:
        mark = Bookmark(f"tank/elabfs-{name}", "zfs-offsite-ab_s1", s1.guid, 1, s1.creation)
        return dataclasses.replace(a, name=name, dataset=f"tank/elabfs-{name}", bookmarks=(mark,))

    quiet = HoldsAnswer({})
    unmarked = dataclasses.replace(a, name="dave", dataset="tank/elabfs-dave")
    alice, bob, carol = marked("alice"), marked("bob"), marked("carol")
    said = marked_before(quiet, [unmarked, alice, bob], "zfs-offsite-ab")  # type: ignore[arg-type]
    assert said == "tank/elabfs-alice (bookmark #zfs-offsite-ab_s1), with 1 more dataset,"
    said = marked_before(quiet, [bob, alice, carol], "zfs-offsite-ab")  # type: ignore[arg-type]
    assert said == "tank/elabfs-bob (bookmark #zfs-offsite-ab_s1), with 2 more datasets,"
    assert marked_before(quiet, [unmarked, bob], "zfs-offsite-ab") == (  # type: ignore[arg-type]
        "tank/elabfs-bob (bookmark #zfs-offsite-ab_s1)"
    )
