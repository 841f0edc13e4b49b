"""What a failed task or flow run says, in one line: its error, or a retried run's earlier ones.

A run's report gives each failed member, and each earlier attempt of a retried
run, one line an admin can act on, whatever Prefect wrapped the error in.
"""

from __future__ import annotations

import re
from typing import Any

from prefect.states import State

# Prefect's words before a failed run's own message.
PREFECT_PREFIX = re.compile(r"^Flow run encountered an exception: \w+: ")


def error_of(state: State[Any]) -> str | None:
    """The one-line error of a failed state, None if it completed.

    Every line of the message is kept, joined: zfs puts the line naming the
    problem first and the one saying what to do last.
    """
    if state.is_completed():
        return None
    try:
        state.result()
    except Exception as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        return "; ".join(lines) or type(exc).__name__
    return state.message or state.name


def earlier_failures() -> list[str]:
    """The messages of this flow run's earlier attempts that failed (a UI Retry keeps them)."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    if not flow_run.id or (flow_run.run_count or 1) < 2:
        return []
    with get_client(sync_client=True) as client:
        states = client.read_flow_run_states(flow_run.id)
    return [
        PREFECT_PREFIX.sub("", s.message or "") or s.name or "failed"
        for s in sorted(states, key=lambda s: s.timestamp)
        if s.is_failed() or s.is_crashed()
    ]
