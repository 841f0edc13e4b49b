"""Which holds and bookmarks a run releases: pure, over hand-built members."""

from __future__ import annotations

import dataclasses

from tests.support.archive_files import member
from zfs_offsite.zfs.model import Bookmark
from zfs_offsite.zfs.protect import stale_marks


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
