"""Which seed-era files a night must read before building on them (pure: chain + verify record)."""

from __future__ import annotations

from dataclasses import replace

from tests.support.archive_files import member, new_file, seed_file
from zfs_offsite.archive.verify_rotation import FileRecord, MemberRecord
from zfs_offsite.jobs.seed_base import unproven_seed_files

SHA = "0" * 64


def passed(*files) -> MemberRecord:  # type: ignore[no-untyped-def]
    """A verify record whose last full read of each file passed, as the file is now."""
    records = {
        f.filename: FileRecord("2026-12-08T01:00:00+00:00", 1, f.size, int(f.mtime), SHA)
        for f in files
    }
    return MemberRecord(runs=1, files=records)


def test_a_seed_base_needs_its_seed_chain_read_unless_verify_passed_it_as_it_is() -> None:
    full, inc = seed_file("elabfs-a@s1.gz"), seed_file("elabfs-a@s1.to.elabfs-a@s2.gz")
    assert unproven_seed_files([full, inc], None) == [full, inc]
    assert unproven_seed_files([full, inc], passed(full)) == [inc]
    assert unproven_seed_files([full, inc], passed(full, inc)) == []
    grown = replace(inc, size=inc.size + 1)  # changed since verify read it: read again
    assert unproven_seed_files([full, grown], passed(full, inc)) == [grown]


def test_a_base_of_the_tools_own_is_proven_already() -> None:
    s = member("s1", "s2", "s3").snapshots
    seeds = [seed_file("elabfs-a@s1.gz"), seed_file("elabfs-a@s1.to.elabfs-a@s2.gz")]
    chain = [*seeds, new_file(s[2], s[1])]
    assert unproven_seed_files(chain, None) == []
    assert unproven_seed_files([], None) == []
