"""`zfs-offsite init`: start a new, empty archive at target.url. Never imports Prefect."""

from __future__ import annotations

from cli import exit_codes, output, startup
from zfs_offsite.errors import ZfsOffsiteError


def init(config: startup.ConfigOption = None) -> None:
    """Make target.url a new, empty archive (its marker); refuses a directory with backups."""
    from zfs_offsite.jobs.archive_root import init as init_job

    settings = startup.load(config)
    try:
        marker = init_job(settings)
    except ZfsOffsiteError as exc:
        output.fail(str(exc), exit_codes.FAILED)
    output.info(f"new archive {marker.archive_id} at {settings.target.parsed}")
