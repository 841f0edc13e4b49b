"""Progress of a running stream: a Prefect progress artifact and periodic log lines."""

from __future__ import annotations

import time
from dataclasses import replace
from types import TracebackType
from typing import cast
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from zfs_offsite.plan.backup import BackupPlan
from zfs_offsite.stream.progress import StreamProgress, publish

LOG_EVERY_SECONDS = 30.0


class ProgressReporter:
    """Called by stream/upload.py about once a second; reports without slowing the stream."""

    def __init__(self, plan: BackupPlan) -> None:
        self.plan = plan
        self.artifact: UUID | None = None
        self.last_log = time.monotonic()
        self.logger = get_run_logger()
        self.last = StreamProgress(plan.member, plan.filename or "")

    def __call__(self, report: StreamProgress) -> None:
        self.last = report
        publish(report)
        raw, stored, estimate = report.raw_bytes, report.stored_bytes, report.estimate
        if estimate:
            percent = min(100.0, 100.0 * raw / estimate)
            if self.artifact is None:
                # Prefect types it for sync and async callers; from a sync task it is the id.
                self.artifact = cast(
                    UUID,
                    create_progress_artifact(
                        percent,
                        description=f"{self.plan.member}: {self.plan.filename}"
                        + (f" (bandwidth limit {report.limit})" if report.limit else ""),
                    ),
                )
            else:
                update_progress_artifact(self.artifact, percent)
        if time.monotonic() - self.last_log >= LOG_EVERY_SECONDS:
            self.last_log = time.monotonic()
            total = f" of ~{estimate / 1e6:.0f} MB" if estimate else ""
            link = ""
            if report.limit and report.rate is not None:
                link = f" at {report.rate / 1e6:.2f} MB/s (limit {report.limit})"
            self.logger.info(
                "%s: %.0f MB sent%s, %.0f MB stored%s",
                self.plan.member,
                raw / 1e6,
                total,
                stored / 1e6,
                link,
            )

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        publish(replace(self.last, done=True))
        if self.artifact is not None and kind is None:
            update_progress_artifact(self.artifact, 100.0)
