"""One writer per member directory: a lock file that holds across processes and hosts.

Two runs (a manual one next to the nightly, two NAS hosts, a prune during a
backup) must never write one member's directory at once. The lock is a file
`.zfs-offsite.lock` in the member directory, made by exclusive create (an
atomic test-and-set on SFTP and local disks alike) and holding who took it.
The holder touches it every `REFRESH_SECONDS` while it works. A lock is taken
over only when it is certainly dead: its holder ran on this machine (same
boot) and that process is gone, or it has not been touched for
`stale_seconds`. That age is judged on the server's clock alone: the lock
file's mtime against the mtime of a probe file the taker writes beside it a
moment before (`server_now`), never against this host's clock, so a server
whose clock is off by an hour neither loses a live lock nor keeps a dead one.
Before committing a file the holder checks the lock is still its own, so even
a wrongly broken lock cannot produce two commits.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Protocol

from zfs_offsite import __version__, cancel
from zfs_offsite.errors import (
    DiskFullError,
    LockBusyError,
    LockLostError,
    PermanentError,
    StoreError,
    ZfsOffsiteError,
)
from zfs_offsite.remote.store import Store, disk_full, read_small_file, remove_quietly

log = logging.getLogger(__name__)

LOCK_NAME = ".zfs-offsite.lock"
BREAK_NAME = ".zfs-offsite.lock.break"  # held for the moment one taker removes a dead lock
CLOCK_NAME = ".zfs-offsite.lock.clock"  # `<this>.<token>`: a taker's probe of the server's clock
REFRESH_SECONDS = 30.0
BREAK_STALE_SECONDS = 60.0  # a taker that died mid-break; breaking takes milliseconds
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
        self._held = False
        self._last_refresh = 0.0

    def __enter__(self) -> MemberLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, waiting up to `wait_seconds` for a live holder; LockBusyError after."""
        deadline = time.monotonic() + self.wait_seconds
        filling_deadline = time.monotonic() + FILLING_SECONDS
        data = (json.dumps(asdict(self.holder), indent=2) + "\n").encode()
        while True:
            cancel.check()
            # Ours before the file exists: a run of this process that reads it at once must
            # not take it for one an earlier attempt of this process left behind.
            _held_here.add(self.holder.token)
            try:
                created = self._create(data)
            except BaseException as exc:
                _held_here.discard(self.holder.token)
                if not isinstance(exc, FileExistsError):
                    raise
                created = False
            if created:
                self._held = True
                self._last_refresh = time.monotonic()
                return
            seen = self._read()
            if seen is None:
                continue  # released between our create and our look: try again
            other, mtime = seen
            age = max(0.0, self.server_now() - mtime)
            if other is None and age < FILLING_SECONDS and time.monotonic() < filling_deadline:
                time.sleep(0.1)  # its holder is likely still writing it: read it again
                continue
            why = self._dead(other, age)
            if why:
                self._break(other, why)
                continue
            if time.monotonic() >= deadline:
                raise LockBusyError(self._busy_message(other, age))
            time.sleep(min(POLL_SECONDS, max(0.1, deadline - time.monotonic())))

    def _create(self, data: bytes) -> bool:
        """Create the lock file with our holder inside; a file we could not fill is removed."""
        try:
            handle = self.store.open_write(self.path)
        except FileExistsError:
            raise
        except ZfsOffsiteError:
            self._read()  # a directory or symlink in the lock's place says so
            raise
        try:
            with handle:
                handle.write(data)
        except BaseException as exc:
            remove_quietly(self.store, self.path)  # ours, empty or half-written
            if isinstance(exc, DiskFullError):
                needed = "a few bytes for the member's lock needed"
                raise disk_full(self.store, exc, self.path, needed=needed) from exc
            raise
        return True

    def _read(self) -> tuple[Holder | None, float] | None:
        """The lock's holder (None if unreadable) and its mtime (the server's clock); None if
        there is no lock."""
        entry = self.store.stat(self.path)
        if entry is None:
            return None
        if entry.is_dir or entry.is_symlink:
            what = "a symlink" if entry.is_symlink else "a directory"
            raise PermanentError(
                f"member {self.member}: {self.path} is {what}, not zfs-offsite's lock file: it "
                "is never followed or removed; move it aside"
            )
        try:
            holder = Holder.parse(read_small_file(self.store, self.path))
        except FileNotFoundError:
            return None
        return holder, entry.mtime

    def server_now(self) -> float:
        """The server's clock now: the mtime it gives a probe file of ours, written and removed.

        Lock ages compare two mtimes the server set, so this host's clock never counts.
        """
        probe = f"{self.member}/{CLOCK_NAME}.{self.holder.token}"
        for _ in range(2):
            try:
                with self.store.open_write(probe) as handle:
                    handle.write(b"")
                break
            except FileExistsError:  # our own token: a probe an earlier call could not remove
                self.store.remove(probe)
        try:
            entry = self.store.stat(probe)
        finally:
            remove_quietly(self.store, probe)
        if entry is None:
            raise StoreError(f"member {self.member}: {probe} vanished as it was written")
        return entry.mtime

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

    def _break(self, other: Holder | None, why: str) -> None:
        """Remove a dead lock, one taker at a time, and only the very lock judged dead."""
        breaker = f"{self.member}/{BREAK_NAME}"
        try:
            with self.store.open_write(breaker) as handle:
                handle.write(self.holder.token.encode())
        except FileExistsError:
            entry = self.store.stat(breaker)
            if entry is not None and self.server_now() - entry.mtime > BREAK_STALE_SECONDS:
                remove_quietly(self.store, breaker)
            time.sleep(0.2)
            return
        try:
            seen = self._read()
            same = seen is not None and (seen[0] == other if other is not None else seen[0] is None)
            if same:
                who = other.describe() if other else "an unreadable lock"
                log.warning("%s: taking over the lock of %s: %s", self.member, who, why)
                self.store.remove(self.path)
        finally:
            remove_quietly(self.store, breaker)

    def _busy_message(self, other: Holder | None, age: float) -> str:
        who = other.describe() if other else "a run whose lock file is unreadable"
        return (
            f"member {self.member}: {who} is writing to it (lock {self.path} touched {age:.0f} s "
            f"ago); waited {self.wait_seconds:.0f} s (lock.wait_seconds). If that run is gone, "
            f"its lock is taken over once untouched for {self.stale_seconds:.0f} s "
            "(lock.stale_seconds), or remove the lock file"
        )

    def refresh(self) -> None:
        """Touch the lock if due; called often by the holder while it streams."""
        if self._held and time.monotonic() - self._last_refresh >= REFRESH_SECONDS:
            self.verify()
            self.store.touch(self.path, self.server_now())
            self._last_refresh = time.monotonic()

    def verify(self) -> None:
        """Raise LockLostError unless the lock is still ours (checked before every commit)."""
        seen = self._read()
        if seen is None or seen[0] is None or seen[0].token != self.holder.token:
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
            seen = self._read()
            if seen is not None and seen[0] is not None and seen[0].token == self.holder.token:
                self.store.remove(self.path)
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
