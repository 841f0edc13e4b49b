"""`zfs-offsite adopt`: make an existing seed archive this tool's (writes its marker, once).

Never imports Prefect. The seed's cron jobs wrote backup files without
sidecars; a backup refuses such a root until it is adopted, because a
directory of old files is not proof that it is the disk the admin meant.
"""

from __future__ import annotations

from cli import exit_codes, output, startup
from zfs_offsite.errors import ZfsOffsiteError


def adopt(config: startup.ConfigOption = None) -> None:
    """Adopt the seed archive at target.url: check it holds backups, write its marker."""
    from zfs_offsite.jobs.archive_root import adopt as adopt_job

    settings = startup.load(config)
    try:
        adoption = adopt_job(settings)
    except ZfsOffsiteError as exc:
        output.fail(str(exc), exit_codes.FAILED)
    archive = f"archive {adoption.marker.archive_id} at {settings.target.parsed}"
    done = f"{archive} is adopted already" if adoption.adopted_before else f"adopted {archive}"
    output.info(done)
    if adoption.recorded:
        output.info(
            f"recorded it on {len(adoption.recorded)} dataset(s) "
            f"({', '.join(adoption.recorded)}): a backup now refuses this target if its "
            "disk is not mounted"
        )
    for problem in adoption.problems:
        output.info(
            f"warning: the archive was not recorded on the source: {problem}; until it is, "
            "an unmounted disk at this target looks like a first backup: fix that and run "
            "`zfs-offsite adopt` again"
        )
    if adoption.seed_files:
        output.info(
            f"{adoption.seed_files} seed-era file(s) carry no checksum: run `zfs-offsite "
            "verify --all` before the first night; a file cut short gets marked and the "
            "backup builds on the last sound one (the first night reads those it builds on)"
        )
