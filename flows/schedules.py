"""Every deployment and when it runs: the one table of schedules.

The flows take their run names' timezone from it when a run has no deployment.

`zfs-offsite serve` (serve.py) builds its deployments from it and the CLI takes
its `serve --cron/--timezone` defaults from it. `prefect.yaml` cannot import
Python, so it repeats the crons and a test (tests/deployments/test_schedules.py)
fails when the two differ. Prefect-free, so the CLI's fast commands stay fast.
"""

from __future__ import annotations

from dataclasses import dataclass

TIMEZONE = "Europe/Berlin"
NIGHTLY_CRON = "30 2 * * *"  # the NAS takes its snapshots at 02:00; start after them


@dataclass(frozen=True)
class Job:
    """One deployment: its flow (as entrypoint), name, and cron."""

    entrypoint: str
    name: str
    cron: str | None  # None: run on demand only (from the UI or the CLI)
    description: str


JOBS = (
    Job(
        "flows/backup.py:backup_flow",
        "nightly",
        NIGHTLY_CRON,
        "Ship each member's newest snapshot off-site (full first, then -I incrementals).",
    ),
    Job(
        "flows/drill.py:drill_flow",
        "weekly-drill",
        "0 5 * * 6",
        "Restore the newest archived snapshot of some members into scratch; prove the GUID.",
    ),
    Job(
        "flows/verify.py:verify_flow",
        "weekly-verify",
        "0 5 * * 0",
        "Read stored files back (new ones, and a rotation that covers all within "
        "verify.cycle_runs): checksums, decompression, chain continuity.",
    ),
    Job(
        "flows/prune.py:prune_flow",
        "weekly-prune",
        "0 6 * * 0",
        "Delete backups the retention policy no longer keeps (after the weekly verify).",
    ),
    Job(
        "flows/restore.py:restore_flow",
        "on-demand",
        None,
        "Restore a member's snapshot into a dataset, or download its chain as files.",
    ),
)
