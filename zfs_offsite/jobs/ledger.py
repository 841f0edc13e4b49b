"""This process's own record of what its backups did, beside the orchestrator's.

Why: a run's record lives on the Prefect server. If that server is lost
mid-run, the files already committed are still stored, but Prefect can no
longer say so: its state of the run is whatever the server last heard. The CLI
keeps this ledger open around its flow run and reports from it, the core's
results, not Prefect's. A member is "stored" only once `commit_backup` renamed
its file into place; every other planned member is reported failed.

Off unless a caller opens it (`keeping`), so a long-lived worker keeps nothing.
Thread-safe: a flow's uploads run in a thread pool.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from zfs_offsite.plan.backup import Action, BackupPlan
from zfs_offsite.zfs.members import Member

if TYPE_CHECKING:
    from zfs_offsite.jobs.backup import BackupResult

NOT_FINISHED = "not stored: the run ended before this member's backup finished"


@dataclass
class Ledger:
    """Per member, in the order planned: its result (stored, or nothing to send), or its error."""

    results: dict[str, BackupResult] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def discovered(self, members: Sequence[Member]) -> None:
        """The members found, in order; one that cannot be a member has its error already."""
        with self._lock:
            for member in members:
                if member.name not in self.order:
                    self.order.append(member.name)
                if member.error is not None:
                    self.errors[member.name] = member.error

    def planned(self, plan: BackupPlan, result: BackupResult) -> None:
        """A plan: what it needs is unknown until its upload ends, unless it sends nothing."""
        with self._lock:
            if plan.member not in self.order:
                self.order.append(plan.member)
            if plan.action is Action.CONFLICT:
                self.errors[plan.member] = f"member {plan.member}: {plan.reason}"
            elif not plan.sends:
                self.results[plan.member] = result

    def finished(self, result: BackupResult) -> None:
        """A member's upload ended: committed (or superseded, or a dry run)."""
        with self._lock:
            self.results[result.member] = result
            self.errors.pop(result.member, None)

    def failed(self, member: str, error: str) -> None:
        """An attempt failed; a later retry's `finished` replaces it."""
        with self._lock:
            if member not in self.results:
                self.errors[member] = error

    def outcomes(self) -> list[tuple[str, BackupResult | None, str | None]]:
        """(member, result, error) per planned member: a member with no result has an error."""
        with self._lock:
            return [
                (m, self.results.get(m), None)
                if m in self.results
                else (m, None, self.errors.get(m, NOT_FINISHED))
                for m in self.order
            ]


_open: Ledger | None = None
_guard = threading.Lock()


@contextmanager
def keeping() -> Iterator[Ledger]:
    """Keep a ledger of this process's backups while the block runs."""
    global _open
    with _guard:
        _open = ledger = Ledger()
    try:
        yield ledger
    finally:
        with _guard:
            _open = None


def current() -> Ledger | None:
    """The open ledger, if a caller keeps one."""
    return _open
