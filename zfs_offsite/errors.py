"""Typed errors that say whether trying again can help.

Retry policies (Prefect's or a user's) read `retryable` instead of guessing
from exception classes or messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ZfsOffsiteError(Exception):
    """Base of every error the tool raises on purpose; the message is one line."""

    retryable: bool = False


class ConfigError(ZfsOffsiteError):
    """A setting is missing or wrong; the message names it and the fix."""


class TransientError(ZfsOffsiteError):
    """A failure that another attempt may not meet (network drop, timeout)."""

    retryable = True


class PermanentError(ZfsOffsiteError):
    """A failure that repeats until a person changes something."""


class HostKeyError(PermanentError):
    """The server's host key is unknown or has changed: never connect."""


class SendError(ZfsOffsiteError):
    """`zfs send` failed or its stream was incomplete."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class StoreError(TransientError):
    """The backup server could not be read or written (connection, I/O)."""


class StallError(StoreError):
    """The backup server made no progress for `target.timeout`: the attempt is abandoned.

    A frozen or hung server would otherwise hold the night forever; another attempt
    (a new connection) may find it working again, so this is retryable.
    """

    @classmethod
    def after(cls, where: str, seconds: float, doing: str) -> StallError:
        """The one line for a stall: the server, how long, what the tool was waiting for."""
        return cls(
            f"{where}: the backup server made no progress for {seconds:g} s while {doing} "
            "(target.timeout): the attempt was stopped and nothing was committed; "
            "if this repeats, check the server's disk and network"
        )


class ReadOnlyError(PermanentError):
    """The backup server's file system is mounted read-only: no write can succeed."""

    @classmethod
    def at(cls, where: str) -> ReadOnlyError:
        return cls(
            f"the backup server's file system at {where} is read-only: nothing can be "
            "stored; remount it read-write (a disk with errors is often remounted "
            "read-only by the kernel: check it first)"
        )


class ArchiveConflictError(PermanentError):
    """A file with the planned name already exists and must not be overwritten."""


class ChainError(PermanentError):
    """A restore chain has a missing or mismatched link."""


class IntegrityError(PermanentError):
    """Stored bytes do not match their recorded checksum or size."""


class DiskFullError(PermanentError):
    """The backup server has no room for the file; another attempt fails the same way."""

    def __init__(self, message: str, *, free_bytes: int | None = None) -> None:
        super().__init__(message)
        self.free_bytes = free_bytes


class NameTooLongError(PermanentError):
    """A backup file's name does not fit the backup server's file system."""


class LockBusyError(PermanentError):
    """Another run holds a member's writer lock; the message names it."""


class LockLostError(PermanentError):
    """Our writer lock was taken from us: nothing may be committed."""


class MembersFailed(ZfsOffsiteError):
    """Some members failed; the others were done. A run ends Failed with this.

    The one such error of backup, verify, drill and prune. `outcomes` holds each
    member's result where the run has one to show (backup outcomes, verify findings).
    """

    def __init__(self, message: str, outcomes: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.outcomes = list(outcomes)


class Cancelled(ZfsOffsiteError):
    """The run was interrupted (signal or cancellation); streams were stopped and cleaned up."""
