"""Which task failures Prefect retries, and how: the one retry policy every task shares."""

from __future__ import annotations

from typing import Any

from prefect import Task
from prefect.states import State
from prefect.tasks import exponential_backoff

from zfs_offsite import cancel


def is_retryable(task: Task[..., Any], task_run: object, state: State[Any]) -> bool:
    """Retry errors that say another attempt can help (drops, timeouts); never a stopped run."""
    if cancel.requested():
        return False
    try:
        state.result()
    except Exception as exc:
        return bool(getattr(exc, "retryable", False))
    return False


def retry_policy(retries: int = 3, first_delay: float = 10.0) -> dict[str, Any]:
    """Task options: retry transient errors only, delays doubling from `first_delay`, jittered."""
    return {
        "retries": retries,
        "retry_delay_seconds": exponential_backoff(backoff_factor=first_delay),
        "retry_jitter_factor": 0.5,
        "retry_condition_fn": is_retryable,
    }
