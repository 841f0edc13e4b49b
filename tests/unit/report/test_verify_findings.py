"""verify's lines on stderr: each unsound file, why, and for a marked one what happens next."""

from __future__ import annotations

from cli.verify_cmd import findings
from zfs_offsite.jobs.verify import FileCheck, MemberVerification, Verdict

CUT = "gzip data ends early (truncated file)"


def test_a_marked_corrupt_file_says_what_the_next_backup_does() -> None:
    bob = MemberVerification(
        "bob",
        [
            FileCheck("elabfs-bob@s1.gz", Verdict.UNVERIFIED, "seed-era file"),
            FileCheck("elabfs-bob@s1.to.elabfs-bob@s2.gz", Verdict.CORRUPT, CUT),
        ],
    )
    (line,) = findings([bob], marked=True)
    assert line.startswith(f"bob/elabfs-bob@s1.to.elabfs-bob@s2.gz: corrupt: {CUT} (marked")
    assert "the next one builds on the newest sound file, or sends a full" in line
    (unmarked,) = findings([bob], marked=False)  # --no-mark: nothing keeps a backup off it
    assert unmarked == f"bob/elabfs-bob@s1.to.elabfs-bob@s2.gz: corrupt: {CUT}"
