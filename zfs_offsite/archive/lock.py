"""One writer per member directory: a lock that holds across processes and hosts.

Two runs (a manual one next to the nightly, two NAS hosts, a prune during a
backup) must never write one member's directory at once. The lock is
`.zfs-offsite.lock` in the member directory, holding who took it. The holder
renews it every `REFRESH_SECONDS` while it works. A lock is taken over only when
it is released or certainly dead: its holder ran on this machine (same boot) and
that process is gone, or it has not been renewed for `stale_seconds`. That age is
judged on the server's clock alone, never against this host's clock, so a server
whose clock is off by an hour neither loses a live lock nor keeps a dead one.
Before committing a file the holder checks the lock is still its own, so even a
wrongly broken lock cannot produce two commits.

The rules live here once (`MemberLock`); how a store keeps the lock is its
backend (`values/lock_state.py`). On a file store, a lock file (`lock_file.py`):
an exclusive create (an atomic test-and-set on SFTP and local disks alike), a
touch as the heartbeat, a dead lock removed under a `.lock.break` file, and ages
from a probe file's mtime. A store with a lock backend of its own hands it out
by `lock_backend(path)` (S3: conditional PUTs, `remote/s3_lock.py`).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import NoReturn, Protocol, runtime_checkable

from zfs_offsite import __version__, cancel
from zfs_offsite.archive.lock_file import FileLock
from zfs_offsite.errors import LockBusyError, LockLostError
from zfs_offsite.remote.store import Store
from zfs_offsite.values.lock_state import LockBackend

log = logging.getLogger(__name__)

LOCK_NAME = ".zfs-offsite.lock"
REFRESH_SECONDS = 30.0
POLL_SECONDS = 2.0
# A lock file is created empty and then filled: one seen unreadable and this young is
# probably being filled by a run that took it a moment ago; look again before judging.
FILLING_SECONDS = 3.0
_held_here: set[str] = set()  # tokens of the locks this process holds right now


def boot_id() -> str:
    """This boot of this machine (Linux); with the pid it names one process for sure."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def pid_namespace() -> str:
    """This process's pid namespace: two containers can share a host name and a boot id."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Holder:
    """What a lock file says about the run that holds it."""

    host: str
    pid: int
    boot_id: str
    run: str
    purpose: str
    started: str
    token: str
    tool_version: str = ""
    pid_ns: str = ""

    @classmethod
    def parse(cls, data: bytes) -> Holder | None:
        """The holder, or None for anything else (being written, not ours): judged by age."""
        try:
            raw = json.loads(data)
        except (ValueError, RecursionError):
            return None
        if not isinstance(raw, dict):
            return None
        fields = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        pid = fields.get("pid")
        if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 2**31:
            return None
        if any(not isinstance(v, str) for k, v in fields.items() if k != "pid"):
            return None
        try:
            return cls(**fields)
        except TypeError:  # a required field is missing
            return None

    def describe(self) -> str:
        return f"{self.purpose} run {self.run} on {self.host} (pid {self.pid}) since {self.started}"

    @property
    def local(self) -> bool:
        """Held by a process this one can see: same boot, host and pid namespace."""
        if not self.pid_ns or self.pid_ns != pid_namespace():
            return False
        return (
            bool(self.boot_id) and self.boot_id == boot_id() and self.host == socket.gethostname()
        )


def released(data: bytes) -> bool:
    """True for a lock its holder gave up in place (S3: a lock object is never deleted)."""
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError):
        return False
    return isinstance(raw, dict) and raw.get("state") == "released"


@runtime_checkable
class KeepsItsOwnLock(Protocol):
    """A store whose lock is not a file (S3): it hands out a backend of its own."""

    def lock_backend(self, path: str) -> LockBackend: ...


def lock_backend(store: Store, member: str, path: str, token: str) -> LockBackend:
    """How `store` keeps the lock at `path`: its own backend, else a lock file."""
    if isinstance(store, KeepsItsOwnLock):
        return store.lock_backend(path)
    return FileLock(store, member, path, token)


class MemberLock:
    """The writer lock of one member directory; a context manager around the writing."""

    def __init__(
        self,
        store: Store,
        member: str,
        *,
        purpose: str,
        run: str | None = None,
        wait_seconds: float = 30.0,
        stale_seconds: float = 600.0,
    ) -> None:
        self.store = store
        self.member = member
        self.path = f"{member}/{LOCK_NAME}"
        self.wait_seconds = wait_seconds
        self.stale_seconds = stale_seconds
        self.holder = Holder(
            host=socket.gethostname(),
            pid=os.getpid(),
            boot_id=boot_id(),
            run=run or "manual",
            purpose=purpose,
            started=datetime.now(UTC).isoformat(timespec="seconds"),
            token=secrets.token_hex(8),
            tool_version=__version__,
            pid_ns=pid_namespace(),
        )
        self.backend = lock_backend(store, member, self.path, self.holder.token)
        self._held = False
        self._version = ""
        self._beats = 0
        self._last_refresh = 0.0

    def __enter__(self) -> MemberLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def _content(self, *, state: str = "held") -> bytes:
        """What the lock holds: our holder; a heartbeat's count and a release's state only
        where the lock's bytes change with them (S3), so each write has its own version."""
        fields: dict[str, object] = dict(asdict(self.holder))
        if self._beats:
            fields["beat"] = self._beats
        if state != "held":
            fields["state"] = state
        return (json.dumps(fields, indent=2) + "\n").encode()

    def acquire(self) -> None:
        """Take the lock, waiting up to `wait_seconds` for a live holder; LockBusyError after."""
        deadline = time.monotonic() + self.wait_seconds
        filling_deadline = time.monotonic() + FILLING_SECONDS
        data = self._content()
        while True:
            cancel.check()
            if self._take(partial(self.backend.create, data)):
                return
            seen = self.backend.read()
            if seen is None:
                continue  # released between our create and our look: try again
            other = Holder.parse(seen.data)
            age = self.backend.age(seen)
            free = released(seen.data)
            if (
                not free
                and other is None
                and age < FILLING_SECONDS
                and time.monotonic() < filling_deadline
            ):
                time.sleep(0.1)  # its holder is likely still writing it: read it again
                continue
            why = "it was released" if free else self._dead(other, age)
            if why:
                if self._take(partial(self.backend.replace_if, seen, data)) and not free:
                    who = other.describe() if other else "an unreadable lock"
                    log.warning("%s: took over the lock of %s: %s", self.member, who, why)
                if self._held:
                    return
                continue
            if time.monotonic() >= deadline:
                raise LockBusyError(self._busy_message(other, age))
            time.sleep(min(POLL_SECONDS, max(0.1, deadline - time.monotonic())))

    def _take(self, attempt: Callable[[], str | None]) -> bool:
        """Run one attempt to take the lock; True (and held) if it made the lock ours."""
        # Ours before the lock exists: a run of this process that reads it at once must
        # not take it for one an earlier attempt of this process left behind.
        _held_here.add(self.holder.token)
        try:
            version = attempt()
        except BaseException:
            _held_here.discard(self.holder.token)
            raise
        if version is None:
            _held_here.discard(self.holder.token)
            return False
        self._held = True
        self._version = version
        self._last_refresh = time.monotonic()
        return True

    def _dead(self, other: Holder | None, age: float) -> str | None:
        """Why the holder is certainly gone, or None while it may be alive."""
        if other is not None and other.local:
            if not process_alive(other.pid):
                return f"its process {other.pid} on this machine is gone"
            if other.pid == os.getpid() and other.token not in _held_here:
                return "an earlier attempt of this process left it (its connection broke)"
        if age > self.stale_seconds:
            return f"untouched for {age:.0f} s (lock.stale_seconds = {self.stale_seconds:.0f})"
        return None

    def _busy_message(self, other: Holder | None, age: float) -> str:
        who = other.describe() if other else "a run whose lock file is unreadable"
        return (
            f"member {self.member}: {who} is writing to it (lock {self.path} touched {age:.0f} s "
            f"ago); waited {self.wait_seconds:.0f} s (lock.wait_seconds). If that run is gone, "
            f"its lock is taken over once untouched for {self.stale_seconds:.0f} s "
            "(lock.stale_seconds), or remove the lock once no run is alive"
        )

    def refresh(self) -> None:
        """Renew the lock if due; called often by the holder while it streams."""
        if self._held and time.monotonic() - self._last_refresh >= REFRESH_SECONDS:
            self._beats += 1
            version = self.backend.renew(self._version, self._content())
            if version is None:
                self._lost()
            self._version = version
            self._last_refresh = time.monotonic()

    def verify(self) -> None:
        """Raise LockLostError unless the lock is still ours (checked before every commit)."""
        seen = self.backend.read()
        if seen is None or seen.version != self._version:
            self._lost()

    def _lost(self) -> NoReturn:
        self._held = False
        _held_here.discard(self.holder.token)
        raise LockLostError(
            f"member {self.member}: the writer lock was taken over by another run; "
            "nothing was committed"
        )

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        _held_here.discard(self.holder.token)
        try:
            self._beats += 1
            self.backend.release(self._version, self._content(state="released"))
        except Exception as exc:  # the connection may be what broke: the lock goes stale
            log.warning("%s: could not release the lock (%s)", self.member, exc)


class LockLimits(Protocol):
    """How long to wait for a held lock and when a holder counts as stale (`settings.lock`)."""

    @property
    def wait_seconds(self) -> float: ...

    @property
    def stale_seconds(self) -> float: ...


def member_lock(
    limits: LockLimits, store: Store, member: str, purpose: str, run: str | None
) -> MemberLock:
    """The writer lock of `member`'s directory, with the configured wait and staleness."""
    return MemberLock(
        store,
        member,
        purpose=purpose,
        run=run,
        wait_seconds=limits.wait_seconds,
        stale_seconds=limits.stale_seconds,
    )
