"""The one-process setup: serve every zfs-offsite deployment from this process.

The schedules are those of `prefect.yaml` (a test keeps the two in step), so a
host can move between `zfs-offsite serve` and a worker without changing when
anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.schedules import Cron

TIMEZONE = "Europe/Berlin"


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
        "30 2 * * *",
        "Ship each member's newest snapshot off-site (full first, then -I incrementals).",
    ),
    Job(
        "flows/verify.py:drill_flow",
        "weekly-drill",
        "0 5 * * 6",
        "Restore the newest archived snapshot of some members into scratch; prove the GUID.",
    ),
    Job(
        "flows/verify.py:verify_flow",
        "weekly-verify",
        "0 5 * * 0",
        "Read every stored file back: checksums, decompression, chain continuity.",
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


def one_at_a_time() -> ConcurrencyLimitConfig:
    """A new run is cancelled while the previous one of the same deployment still runs."""
    return ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)


def serve_all(backup_cron: str | None = None, timezone: str = TIMEZONE) -> None:
    """Register every job as a deployment and run them from this process until stopped."""
    from flows.backup import backup_flow
    from flows.prune import prune_flow
    from flows.restore import restore_flow
    from flows.verify import drill_flow, verify_flow

    flows = {
        "flows/backup.py:backup_flow": backup_flow,
        "flows/verify.py:drill_flow": drill_flow,
        "flows/verify.py:verify_flow": verify_flow,
        "flows/restore.py:restore_flow": restore_flow,
        "flows/prune.py:prune_flow": prune_flow,
    }

    def schedules(job: Job) -> list[Cron]:
        cron = backup_cron if backup_cron and job.name == "nightly" else job.cron
        return [Cron(cron, timezone)] if cron else []

    deployments = [
        flows[job.entrypoint].to_deployment(  # type: ignore[attr-defined]
            name=job.name,
            schedules=schedules(job),
            concurrency_limit=one_at_a_time() if job.cron else None,
            tags=["zfs-offsite"],
            description=job.description,
        )
        for job in JOBS
    ]
    serve(*deployments)  # type: ignore[arg-type]
