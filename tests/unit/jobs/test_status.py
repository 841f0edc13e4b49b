"""The monitoring verdict of `status` (pure: member + archive index -> ok/warning/critical)."""

from __future__ import annotations

from dataclasses import replace

from tests.support.archive_files import member, new_file, seed_file
from zfs_offsite.archive.model import MemberArchive
from zfs_offsite.jobs.status import Health, Thresholds, judge, member_status
from zfs_offsite.values.entries import StoreEntry

HOUR = 3600.0
NIGHTLY = Thresholds(warning_hours=26, critical_hours=50)


def verdict(files: list, now: float = HOUR, names: tuple[str, ...] = ("s1", "s2")):  # type: ignore[no-untyped-def]
    m = member(*names)
    return judge(member_status(m, MemberArchive("a", files=files), now=now), NIGHTLY)


def test_a_fresh_sound_chain_is_ok() -> None:
    s = member("s1", "s2").snapshots
    assert verdict([new_file(s[0]), new_file(s[1], s[0])]) == (Health.OK, [])


def test_age_passes_warning_then_critical() -> None:
    s = member("s1", "s2").snapshots
    files = [new_file(s[0]), new_file(s[1], s[0])]
    assert verdict(files, now=30 * HOUR) == (Health.WARNING, ["newest backup 30 h old (> 26 h)"])
    assert verdict(files, now=60 * HOUR) == (Health.CRITICAL, ["newest backup 60 h old (> 50 h)"])


def test_no_backup_is_critical() -> None:
    assert verdict([]) == (Health.CRITICAL, ["no backup"])


def test_a_corrupt_newest_file_is_critical_and_named() -> None:
    s = member("s1", "s2").snapshots
    bad = replace(new_file(s[1], s[0]), corrupt="sha256 mismatch", mtime=10.0)
    health, reasons = verdict([new_file(s[0]), bad])
    assert health is Health.CRITICAL
    assert reasons == [f"corrupt: {bad.filename}"]


def test_a_newest_file_without_its_full_is_a_broken_chain() -> None:
    s = member("s1", "s2").snapshots
    orphan = replace(new_file(s[1], s[0]), mtime=10.0)
    health, reasons = verdict([orphan])
    assert health is Health.CRITICAL
    assert "broken chain: the newest file cannot be restored from a full" in reasons


def test_an_older_file_in_no_chain_is_a_warning() -> None:
    s = member("s1", "s2", "s3").snapshots
    stray = replace(new_file(s[1], s[2]), mtime=-1.0)  # base newer than target: links nowhere
    health, reasons = verdict([new_file(s[0]), stray], names=("s1", "s2", "s3"))
    assert health is Health.WARNING
    assert reasons == [f"in no restorable chain: {stray.filename}"]


def test_a_seed_era_chain_is_unverified_a_warning() -> None:
    files = [seed_file("elabfs-a@s1.gz"), seed_file("elabfs-a@s1.to.elabfs-a@s2.gz")]
    assert verdict(files) == (Health.WARNING, ["unverified: 2 seed-era file(s) in the chain"])


def test_status_reports_newest_restorable_snapshot_and_its_chain() -> None:
    from zfs_offsite.archive.model import MemberArchive
    from zfs_offsite.jobs.status import member_status

    m = member("s1", "s2", "s3")
    s = m.snapshots
    archive = MemberArchive("a", files=[new_file(s[0]), new_file(s[1], s[0])])
    status = member_status(m, archive, now=3600.0)
    assert (status.newest_local, status.newest_archived) == ("s3", "s2")
    assert status.chain_length == 2
    assert status.archived_age_hours == 1.0


def test_a_cut_upload_and_its_checkpoints_count_as_one_partial() -> None:
    s = member("s1").snapshots
    partials = [
        StoreEntry("elabfs-a@s1.zst.0123456789ab.partial", 10, 0.0),
        StoreEntry("elabfs-a@s1.zst.0123456789ab.ckpt.partial", 1, 0.0),
        StoreEntry("elabfs-a@s2.zst.partial", 1, 0.0),
    ]
    archive = MemberArchive("a", files=[new_file(s[0])], partials=partials)
    assert member_status(member("s1"), archive, now=HOUR).partial_files == 2


def test_a_sidecar_less_file_after_the_tools_first_is_one_line_naming_it_and_the_fix() -> None:
    """An old cron job's cut `s1 -> s2`: not 'unverified', not a link, not 'corrupt' either."""
    s = member("s1", "s2").snapshots
    junk = replace(seed_file("elabfs-a@s1.to.elabfs-a@s2.gz"), mtime=200.0)
    status = member_status(member("s1", "s2"), MemberArchive("a", files=[new_file(s[0]), junk]))
    assert status.newest_archived == "s1" and status.unverified_in_chain == 0
    health, reasons = judge(status, Thresholds(warning_hours=1e9, critical_hours=1e9))
    assert health is Health.WARNING
    assert len(reasons) == 1
    assert reasons[0].startswith(f"{junk.filename} has no .sha256 or .json but was written after")
    assert "move the file out of the member directory" in reasons[0]


def test_orphaned_directories_are_named_with_what_to_do() -> None:
    from zfs_offsite.jobs.status import orphaned_directories

    orphans = orphaned_directories(["a", "gone", "old-name"], [member("s1")], "tank")
    assert sorted(orphans) == ["gone", "old-name"]
    assert orphans["gone"].startswith(
        "gone/ on the backup server belongs to no member of pool tank (its dataset was renamed "
        "or destroyed on the NAS, or is no longer selected)"
    )
    assert "zfs-offsite restore gone <new dataset>" in orphans["gone"]
    assert "move the directory off the target" in orphans["gone"]
