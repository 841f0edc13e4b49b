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
        marker = adopt_job(settings)
    except ZfsOffsiteError as exc:
        output.fail(str(exc), exit_codes.FAILED)
    output.info(f"adopted archive {marker.archive_id} at {settings.target.parsed}")
