"""An SFTP server as the backup target: paramiko, host key checked, SFTP only.

Only SFTP requests are sent (no remote shell), so the backup account can be
locked to `internal-sftp` in a chroot. Renames use the `posix-rename@openssh.com`
extension, which replaces the destination atomically.
"""

from __future__ import annotations

import contextlib
import errno
import posixpath
import socket
import stat as stat_module
from collections.abc import Callable, Iterator
from typing import BinaryIO, TypeVar

import paramiko

from zfs_offsite.errors import PermanentError, StoreError
from zfs_offsite.openssh import OpenSshChannel
from zfs_offsite.ssh import SshEndpoint, connect
from zfs_offsite.store import StoreEntry

T = TypeVar("T")

# One SFTP write per SSH channel packet: paramiko caps a packet at 32768 - 64
# bytes and an SFTP write request adds 29 bytes of header. Safe with any server.
WRITE_REQUEST_SIZE = 32768 - 64 - 29
# OpenSSH's sftp-server takes messages up to 256 KiB; fewer, larger requests
# cut paramiko's per-request Python work (measured 1.5x on loopback).
OPENSSH_WRITE_REQUEST_SIZE = 240 * 1024
# Reads: the SFTP draft's 32 KiB everywhere, OpenSSH's sftp-server serves up to 256 KiB.
READ_REQUEST_SIZE = 32768
OPENSSH_READ_REQUEST_SIZE = 240 * 1024
READ_CHUNK = 1024 * 1024  # what read_chunks yields
READ_WINDOW = 8 * READ_CHUNK  # requested at once; at most two windows are held
_CONNECTION_ERRORS = (paramiko.SSHException, socket.error, EOFError, TimeoutError)


def _guard(description: str, action: Callable[[], T]) -> T:
    """Run one SFTP call, turning library errors into the tool's typed errors."""
    try:
        return action()
    except PermissionError as exc:
        raise PermanentError(f"{description}: permission denied on the backup server") from exc
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise PermanentError(f"{description}: backup server disk is full") from exc
        if isinstance(exc, FileNotFoundError):
            raise
        raise StoreError(f"{description}: {exc}") from exc
    except _CONNECTION_ERRORS as exc:
        raise StoreError(f"{description}: connection failed: {exc or type(exc).__name__}") from exc


class SftpStore:
    """A directory on an SFTP server, reached over one verified SSH transport."""

    def __init__(self, endpoint: SshEndpoint, root: str, *, openssh_client: bool = False) -> None:
        self.endpoint = endpoint
        self.root = root
        self.description = f"sftp://{endpoint.user}@{endpoint.host}:{endpoint.port}/{root}"
        self._transport: paramiko.Transport | None = None
        self._channel: OpenSshChannel | None = None
        if openssh_client:
            self._channel = OpenSshChannel(endpoint)
            try:
                client = paramiko.SFTPClient(self._channel)  # type: ignore[arg-type]
            except _CONNECTION_ERRORS as exc:
                failure = self._channel.failure()
                self._channel.close()
                raise failure from exc
            server = self._channel.server_version
        else:
            self._transport = connect(endpoint)
            try:
                client = paramiko.SFTPClient.from_transport(self._transport)
            except _CONNECTION_ERRORS as exc:
                self._transport.close()
                raise StoreError(f"{self.description}: SFTP subsystem refused: {exc}") from exc
            assert client is not None
            client.get_channel().settimeout(endpoint.timeout)  # type: ignore[union-attr]
            server = self._transport.remote_version or ""
        self._sftp = client
        openssh = "OpenSSH" in server
        self._write_request_size = OPENSSH_WRITE_REQUEST_SIZE if openssh else WRITE_REQUEST_SIZE
        self._read_request_size = OPENSSH_READ_REQUEST_SIZE if openssh else READ_REQUEST_SIZE

    def _path(self, path: str) -> str:
        return posixpath.normpath(posixpath.join(self.root, path))

    def listdir(self, path: str) -> list[StoreEntry]:
        try:
            attrs = _guard(
                f"list {self._path(path)}", lambda: self._sftp.listdir_attr(self._path(path))
            )
        except FileNotFoundError:
            return []
        return sorted((_entry(a.filename, a) for a in attrs), key=lambda e: e.name)

    def stat(self, path: str) -> StoreEntry | None:
        full = self._path(path)
        try:
            attrs = _guard(f"stat {full}", lambda: self._sftp.stat(full))
        except FileNotFoundError:
            return None
        return _entry(posixpath.basename(full), attrs)

    def makedirs(self, path: str) -> None:
        full = self._path(path)
        parts = full.split("/")
        for i in range(1, len(parts) + 1):
            current = "/".join(parts[:i])
            if not current or current == ".":
                continue
            if self.stat_raw(current) is None:
                _guard(f"mkdir {current}", lambda c=current: self._sftp.mkdir(c))

    def stat_raw(self, full: str) -> paramiko.SFTPAttributes | None:
        try:
            return _guard(f"stat {full}", lambda: self._sftp.stat(full))
        except FileNotFoundError:
            return None

    def open_write(self, path: str) -> BinaryIO:
        full = self._path(path)
        handle = _guard(f"create {full}", lambda: self._sftp.open(full, "wb", bufsize=0))
        handle.MAX_REQUEST_SIZE = self._write_request_size
        handle.set_pipelined(True)
        return _GuardedWriter(handle, full)  # type: ignore[return-value]

    def open_read(self, path: str) -> BinaryIO:
        full = self._path(path)
        return _guard(f"open {full}", lambda: self._sftp.open(full, "rb", bufsize=1024 * 1024))

    def read_chunks(self, path: str) -> Iterator[bytes]:
        full = self._path(path)
        handle = _guard(f"open {full}", lambda: self._sftp.open(full, "rb", bufsize=0))
        handle.MAX_REQUEST_SIZE = self._read_request_size
        with handle:
            size = _guard(f"stat {full}", handle.stat).st_size or 0
            windows = [
                [
                    (offset, min(READ_CHUNK, size - offset))
                    for offset in range(start, min(start + READ_WINDOW, size), READ_CHUNK)
                ]
                for start in range(0, size, READ_WINDOW)
            ]
            # readv pipelines one window's requests. The next window is requested
            # before the current one is handed out, so the server never idles
            # while we consume, and at most two windows are held in memory.
            current = self._start_window(handle, full, windows[0]) if windows else None
            for index in range(len(windows)):
                assert current is not None
                first, rest = current
                following = index + 1 < len(windows)
                current = (
                    self._start_window(handle, full, windows[index + 1]) if following else None
                )
                yield first
                while (block := _guard(f"read {full}", lambda r=rest: next(r, None))) is not None:
                    yield block

    @staticmethod
    def _start_window(
        handle: paramiko.SFTPFile, full: str, ranges: list[tuple[int, int]]
    ) -> tuple[bytes, Iterator[bytes]]:
        blocks = handle.readv(ranges)
        return _guard(f"read {full}", lambda: next(blocks)), blocks

    def rename(self, source: str, destination: str) -> None:
        src, dst = self._path(source), self._path(destination)
        _guard(f"rename {src}", lambda: self._sftp.posix_rename(src, dst))

    def remove(self, path: str) -> None:
        full = self._path(path)
        with contextlib.suppress(FileNotFoundError):
            _guard(f"remove {full}", lambda: self._sftp.remove(full))

    def close(self) -> None:
        self._sftp.close()
        if self._transport is not None:
            self._transport.close()
        if self._channel is not None:
            self._channel.close()


class _GuardedWriter:
    """An SFTP file whose errors surface as typed store errors."""

    def __init__(self, handle: paramiko.SFTPFile, path: str) -> None:
        self._handle = handle
        self._path = path

    def write(self, data: bytes | memoryview) -> int:
        _guard(f"write {self._path}", lambda: self._handle.write(data))
        return len(data)

    def close(self) -> None:
        # Pipelined writes report their errors here, when the replies are read.
        _guard(f"finish {self._path}", self._handle.close)

    def __enter__(self) -> _GuardedWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _entry(name: str, attrs: paramiko.SFTPAttributes) -> StoreEntry:
    mode = attrs.st_mode or 0
    # READDIR attributes are lstat's, so a symlink shows as one.
    return StoreEntry(
        name,
        attrs.st_size or 0,
        float(attrs.st_mtime or 0),
        stat_module.S_ISDIR(mode),
        stat_module.S_ISLNK(mode),
    )
