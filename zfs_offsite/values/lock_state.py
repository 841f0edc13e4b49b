"""What a store keeps of a member's writer lock, and how it is asked: the lock backend.

The rules of the lock (wait, judge a holder dead, stale age, heartbeat, messages)
live once in `archive/lock.py`. A store only has to offer a few primitives, each
in its own way: a file store by exclusive create, a rename-free removal under a
break file and a probe file's mtime; an object store by conditional PUTs and the
`Date` of its replies (`remote/s3_lock.py`). This module is the contract between
the two, a leaf so that `remote/` can implement it without importing `archive/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class LockSeen:
    """A lock as read once: its bytes, what names this very version of it, and its age.

    `version` is opaque to the rules: the object's ETag on S3, a digest of the bytes
    on a file store. `written` is when the lock was last written or touched and
    `now` the server's clock when it was read (None: ask the backend's `age`); both
    on the server's clock, never this host's.
    """

    data: bytes
    version: str
    written: float
    now: float | None = None


class LockBackend(Protocol):
    """How one store keeps one member's lock; every method is one step of the rules."""

    def create(self, data: bytes) -> str | None:
        """A new lock holding `data`: its version; None when a lock is there already."""
        ...

    def read(self) -> LockSeen | None:
        """The lock as it is now; None when there is none."""
        ...

    def age(self, seen: LockSeen) -> float:
        """Seconds since `seen` was last written or touched, on the server's clock."""
        ...

    def replace_if(self, seen: LockSeen, data: bytes) -> str | None:
        """Take over the very lock `seen` (judged dead or released): our version, or None
        when it changed meanwhile or another taker won (look again)."""
        ...

    def renew(self, version: str, data: bytes) -> str | None:
        """The heartbeat: keep our lock `version` alive; its new version, None if lost."""
        ...

    def release(self, version: str, data: bytes) -> None:
        """Give our lock `version` up (`data`: the released state); a lost lock is left."""
        ...
