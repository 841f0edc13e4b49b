"""A member's writer lock as a file: the lock backend of SFTP servers and local disks.

An exclusive create is an atomic test-and-set on both; the heartbeat sets the
file's mtime to the server's time; a dead lock is removed under a `.lock.break`
file (one taker at a time, and only the very lock judged dead), since a file
cannot be replaced on the condition that it is still the one read. Ages are
judged on the server's clock alone: the lock's mtime against the mtime of a probe
file the taker writes beside it a moment before (`server_now`).
"""

from __future__ import annotations

import hashlib
import time

from zfs_offsite.errors import DiskFullError, PermanentError, StoreError, ZfsOffsiteError
from zfs_offsite.remote.store import Store, disk_full, read_small_file, remove_quietly
from zfs_offsite.values.lock_state import LockSeen

BREAK_NAME = ".zfs-offsite.lock.break"  # held for the moment one taker removes a dead lock
CLOCK_NAME = ".zfs-offsite.lock.clock"  # `<this>.<token>`: a taker's probe of the server's clock
BREAK_STALE_SECONDS = 60.0  # a taker that died mid-break; breaking takes milliseconds


class FileLock:
    """The lock as a file: exclusive create, touch, removal under a break file.

    Its version is a digest of the file's bytes: every holder writes its own token
    into it, and a file lock's bytes never change while it is held (the heartbeat
    sets its mtime).
    """

    def __init__(self, store: Store, member: str, path: str, token: str) -> None:
        self.store = store
        self.member = member
        self.path = path
        self.token = token

    def create(self, data: bytes) -> str | None:
        """Create the lock file with our holder inside; a file we could not fill is removed."""
        try:
            handle = self.store.open_write(self.path)
        except FileExistsError:
            return None
        except ZfsOffsiteError:
            self.read()  # a directory or symlink in the lock's place says so
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
        return _digest(data)

    def read(self) -> LockSeen | None:
        """The lock file's bytes and mtime (the server's clock); None if there is none."""
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
            data = read_small_file(self.store, self.path)
        except FileNotFoundError:
            return None
        return LockSeen(data, _digest(data), entry.mtime)

    def age(self, seen: LockSeen) -> float:
        return max(0.0, self.server_now() - seen.written)

    def server_now(self) -> float:
        """The server's clock now: the mtime it gives a probe file of ours, written and removed.

        Lock ages compare two mtimes the server set, so this host's clock never counts.
        """
        probe = f"{self.member}/{CLOCK_NAME}.{self.token}"
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

    def replace_if(self, seen: LockSeen, data: bytes) -> str | None:
        """Remove the very lock judged dead, one taker at a time, and create ours."""
        breaker = f"{self.member}/{BREAK_NAME}"
        try:
            with self.store.open_write(breaker) as handle:
                handle.write(self.token.encode())
        except FileExistsError:
            entry = self.store.stat(breaker)
            if entry is not None and self.server_now() - entry.mtime > BREAK_STALE_SECONDS:
                remove_quietly(self.store, breaker)
            time.sleep(0.2)
            return None
        try:
            now = self.read()
            if now is None or now.data != seen.data:
                return None
            self.store.remove(self.path)
            return self.create(data)
        finally:
            remove_quietly(self.store, breaker)

    def renew(self, version: str, data: bytes) -> str | None:
        """Touch our lock with the server's time; None if it is no longer ours."""
        seen = self.read()
        if seen is None or seen.version != version:
            return None
        self.store.touch(self.path, self.server_now())
        return version

    def release(self, version: str, data: bytes) -> None:
        """Remove the lock if it is still ours."""
        seen = self.read()
        if seen is not None and seen.version == version:
            self.store.remove(self.path)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
