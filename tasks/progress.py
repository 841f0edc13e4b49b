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
# A stream gets its progress artifact once it has run this long, then an update at most
# this often: a night of many small members would otherwise post an artifact and its
# updates per member (each an API call and a row in the server's database) for streams
# that end within a second. The CLI's bars (`publish`) still see every report.
ARTIFACT_AFTER_SECONDS = 10.0
ARTIFACT_EVERY_SECONDS = 10.0


class ProgressReporter:
    """Called by stream/upload.py about once a second; reports without slowing the stream."""

    def __init__(self, plan: BackupPlan) -> None:
        self.plan = plan
        self.artifact: UUID | None = None
        self.started = self.last_log = self.last_post = time.monotonic()
        self.logger = get_run_logger()
        self.last = StreamProgress(plan.member, plan.filename or "")

    def __call__(self, report: StreamProgress) -> None:
        self.last = report
        publish(report)
        raw, stored, estimate = report.raw_bytes, report.stored_bytes, report.estimate
        now = time.monotonic()
        if estimate and now - self.started >= ARTIFACT_AFTER_SECONDS:
            self.post(min(100.0, 100.0 * raw / estimate), now)
        if now - self.last_log >= LOG_EVERY_SECONDS and report.checking:
            self.last_log = now  # a resume checks the earlier attempt's bytes: nothing is sent
            self.logger.info(
                "%s: checking the earlier upload: %d MiB matched", self.plan.member, stored >> 20
            )
        elif now - self.last_log >= LOG_EVERY_SECONDS:
            self.last_log = now
            total = f" of ~{estimate / 1e6:.0f} MB" if estimate else ""
            link = ""
            if report.limit and report.rate is not None:
                link = f" at {report.rate / 1e6:.2f} MB/s sent (limit {report.limit})"
            if report.resumed_bytes:
                link += f", {report.resumed_bytes / 1e6:.0f} MB of it resumed, not sent again"
            self.logger.info(
                "%s: %.0f MB sent%s, %.0f MB stored%s",
                self.plan.member,
                raw / 1e6,
                total,
                stored / 1e6,
                link,
            )

    def post(self, percent: float, now: float) -> None:
        """Create the stream's artifact, or update it if the last update is old enough."""
        if self.artifact is None:
            # Prefect types it for sync and async callers; from a sync task it is the id.
            self.artifact = cast(
                UUID,
                create_progress_artifact(
                    percent,
                    description=f"{self.plan.member}: {self.plan.filename}"
                    + (f" (bandwidth limit {self.last.limit})" if self.last.limit else ""),
                ),
            )
        elif now - self.last_post >= ARTIFACT_EVERY_SECONDS:
            update_progress_artifact(self.artifact, percent)
        else:
            return
        self.last_post = now

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        publish(replace(self.last, done=True))
        if self.artifact is not None and kind is None:
            update_progress_artifact(self.artifact, 100.0)
