"""The host's send limit: a Prefect global concurrency limit `zfs-send-<host>`, if it exists.

Several runs on one host (a night, a manual backup, a UI Retry) share the NAS's
disks and uplink; the limit caps their streams together. A run looks it up once
and holds its slots once for all its uploads.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SendLimit:
    """A global concurrency limit that exists on the server: its name and its slots."""

    name: str
    slots: int


def optional_limit(
    name: str, logger: logging.Logger | logging.LoggerAdapter[Any]
) -> SendLimit | None:
    """The limit `name` if it exists; else say once, at INFO, it is not used.

    `concurrency(name, strict=False)` warns on every acquisition of a missing
    limit; checking once per run keeps a "warnings and above" view clean.
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            found = client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        logger.info("no concurrency limit %s on the server: sends are limited per run only", name)
        return None
    return SendLimit(name, found.limit)


@contextmanager
def send_slots(
    limit: SendLimit | None, streams: int, logger: logging.Logger | logging.LoggerAdapter[Any]
) -> Iterator[int]:
    """Hold slots of the host's send limit while a run streams; yields the streams it may run.

    One acquisition per run, not per upload: acquiring and releasing a slot
    (a lease) per member cost about a second of waiting each on a busy
    server (issue 14). The run holds min(`streams`, the limit's slots) and
    runs that many streams at once, so sends from the host across runs stay
    within the limit; another run waits for this one's uploads to end.
    `streams` 0 (nothing to send) holds nothing.
    """
    from prefect.concurrency.sync import concurrency

    if limit is None or streams < 1:
        yield max(streams, 1)
        return
    held = max(1, min(streams, limit.slots))
    logger.info("holding %d slot(s) of concurrency limit %s for this run's sends", held, limit.name)
    with concurrency(limit.name, occupy=held):
        yield held
