"""An SFTP server as the backup target: paramiko, host key checked, SFTP only.

Only SFTP requests are sent (no remote shell), so the backup account can be
locked to `internal-sftp` in a chroot. Renames use the `posix-rename@openssh.com`
extension, which replaces the destination atomically.

Writes are sent as pipelined requests whose every reply is read and checked
(paramiko's own pipelined file drops the replies it has not read by `close`),
then `fsync@openssh.com` flushes the file on the server where it is offered.
Those requests go through paramiko's request layer with a reply handler of
ours, because paramiko keeps only the text of an SFTP status, not its code.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import posixpath
import socket
import stat as stat_module
import struct
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import NoReturn, TypeVar, cast

import paramiko
from paramiko.message import Message
from paramiko.sftp import (
    CMD_CLOSE,
    CMD_DATA,
    CMD_EXTENDED,
    CMD_EXTENDED_REPLY,
    CMD_FSETSTAT,
    CMD_HANDLE,
    CMD_OPEN,
    CMD_READ,
    CMD_STATUS,
    CMD_WRITE,
    SFTP_BAD_MESSAGE,
    SFTP_EOF,
    SFTP_FAILURE,
    SFTP_FLAG_CREATE,
    SFTP_FLAG_EXCL,
    SFTP_FLAG_WRITE,
    SFTP_NO_SUCH_FILE,
    SFTP_OK,
    SFTP_OP_UNSUPPORTED,
    SFTP_PERMISSION_DENIED,
)
from paramiko.sftp_attr import SFTPAttributes

from zfs_offsite.errors import (
    DiskFullError,
    IntegrityError,
    NameTooLongError,
    PermanentError,
    ReadOnlyError,
    StallError,
    StoreError,
)
from zfs_offsite.remote.store import (
    FLUSHED,
    PRIVATE_UMASK,
    Flush,
    ReadHandle,
    WriterBase,
    root_missing,
    short_file,
)
from zfs_offsite.transport.openssh import OpenSshChannel
from zfs_offsite.transport.ssh import SshEndpoint, connect, sftp_refused
from zfs_offsite.values.entries import Space, StoreEntry

log = logging.getLogger(__name__)
T = TypeVar("T")

# One SFTP write per SSH channel packet: paramiko caps a packet at 32768 - 64
# bytes and an SFTP write request adds 29 bytes of header. Safe with any server.
WRITE_REQUEST_SIZE = 32768 - 64 - 29
# OpenSSH's sftp-server takes messages up to 256 KiB; fewer, larger requests
# cut paramiko's per-request Python work (measured 1.5x on loopback).
OPENSSH_WRITE_REQUEST_SIZE = 240 * 1024
# Write bytes in flight before the oldest reply is awaited: the pipe stays full.
WRITE_WINDOW = 16 * 1024 * 1024
# Reads: the SFTP draft's 32 KiB everywhere, OpenSSH's sftp-server serves up to 256 KiB.
READ_REQUEST_SIZE = 32768
OPENSSH_READ_REQUEST_SIZE = 240 * 1024
READ_CHUNK = 1024 * 1024  # what read_chunks yields
READ_WINDOW = 8 * READ_CHUNK  # requested at once; at most two windows are held
# Free space below this after a failed write means the disk filled up.
FULL_THRESHOLD = 64 * 1024 * 1024
STATVFS_READ_ONLY = 0x1  # SSH2_FXE_STATVFS_ST_RDONLY in statvfs@openssh.com's f_flag
_CONNECTION_ERRORS = (paramiko.SSHException, socket.error, EOFError, TimeoutError)


class SftpStatus(Exception):
    """An SFTP status reply other than OK, with its code (paramiko keeps only the text)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text or f"SFTP status {code}")
        self.code = code


def _guard(description: str, action: Callable[[], T]) -> T:
    """Run one SFTP call, turning library errors into the tool's typed errors."""
    try:
        return action()
    except SftpStatus as exc:
        if exc.code == SFTP_NO_SUCH_FILE:
            raise FileNotFoundError(errno.ENOENT, f"{description}: no such file") from exc
        if exc.code == SFTP_PERMISSION_DENIED:
            raise PermanentError(f"{description}: permission denied on the backup server") from exc
        raise StoreError(f"{description}: the server said {exc}") from exc
    except PermissionError as exc:
        raise PermanentError(f"{description}: permission denied on the backup server") from exc
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DiskFullError(f"{description}: backup server disk is full") from exc
        if isinstance(exc, FileNotFoundError | FileExistsError):
            raise
        raise StoreError(f"{description}: {exc}") from exc
    except _CONNECTION_ERRORS as exc:
        raise StoreError(f"{description}: connection failed: {exc or type(exc).__name__}") from exc


class _Requests:
    """SFTP requests whose replies come back with their status code.

    paramiko hands each reply to the object registered with its request
    (`_async_response`); this is that object for every request we send.
    """

    def __init__(self, client: paramiko.SFTPClient) -> None:
        self._client = client
        self._replies: dict[int, tuple[int, Message]] = {}

    def send(self, command: int, *args: object) -> int:
        # paramiko's pipelining hook: no public call sends a request without waiting for it.
        return self._client._async_request(self, command, *args)  # type: ignore[attr-defined]

    def send_write(self, handle: bytes, offset: int, data: memoryview) -> int:
        """An SFTP WRITE request sent without copying `data` (paramiko's path copies it 4 times).

        The request number is taken and its reply registered exactly as
        paramiko's `_async_request` does, so replies come back through `wait`.
        """
        client = self._client
        with client._lock:  # type: ignore[attr-defined]  # see send()
            num: int = client.request_number
            client._expecting[num] = self  # type: ignore[attr-defined]
            client.request_number = num + 1
        # uint32 length, byte type, uint32 id, string handle, uint64 offset, string data
        length = 1 + 4 + 4 + len(handle) + 8 + 4 + len(data)
        header = b"".join(
            (
                struct.pack(">IBII", length, CMD_WRITE, num, len(handle)),
                handle,
                struct.pack(">QI", offset, len(data)),
            )
        )
        _send_all(client.sock, memoryview(header))
        _send_all(client.sock, data)
        return num

    def _async_response(self, kind: int, msg: Message, num: int) -> None:
        self._replies[num] = (kind, msg)

    def wait(self, num: int) -> tuple[int, Message]:
        """The reply to request `num`; an error status raises SftpStatus."""
        while num not in self._replies:
            self._client._read_response()  # type: ignore[attr-defined]  # see send()
        kind, msg = self._replies.pop(num)
        if kind == CMD_STATUS:
            code, text = msg.get_int(), msg.get_text()
            if code != SFTP_OK:
                raise SftpStatus(code, text)
        return kind, msg

    def call(self, command: int, *args: object) -> tuple[int, Message]:
        return self.wait(self.send(command, *args))

    def forget(self) -> None:
        """Drop replies nobody will wait for (after an aborted file)."""
        self._replies.clear()


def _send_all(sock: paramiko.Channel | OpenSshChannel | _Watchdog, data: memoryview) -> None:
    while data:
        sent = sock.send(data)  # type: ignore[arg-type]  # both take any buffer
        if sent <= 0:
            raise EOFError("the SFTP channel is closed")
        data = data[sent:]


def _recv_into(sock: paramiko.Channel | OpenSshChannel, buffer: memoryview) -> int:
    if isinstance(sock, OpenSshChannel):
        return sock.recv_into(buffer)
    data = sock.recv(len(buffer))
    buffer[: len(data)] = data
    return len(data)


class _Watchdog:
    """The SFTP client's socket, where a server that stops making progress is caught.

    paramiko's channel and the `ssh` process's socket both carry `target.timeout`:
    a send or receive that moves no byte for that long raises TimeoutError. That is a
    stall: this turns it into StallError (retryable) and drops the connection, so the
    clean-up that follows (abort, remove the partial, release the lock) fails at once
    instead of waiting a timeout per request, and the `ssh` process ends.
    """

    def __init__(
        self,
        sock: paramiko.Channel | OpenSshChannel,
        where: str,
        seconds: float,
        drop: Callable[[], None],
    ) -> None:
        self._sock = sock
        self._where = where
        self._seconds = seconds
        self._drop = drop
        self._stall: str | None = None

    def send(self, data: bytes) -> int:
        return self._watch("sending to it", lambda: self._sock.send(data))

    def recv(self, size: int) -> bytes:
        return self._watch("waiting for its reply", lambda: self._sock.recv(size))

    def recv_into(self, buffer: memoryview) -> int:
        """Receive into `buffer` (the OpenSSH socket directly; a paramiko channel copies)."""
        return self._watch("waiting for its reply", lambda: _recv_into(self._sock, buffer))

    def _watch(self, doing: str, call: Callable[[], T]) -> T:
        if self._stall is not None:
            raise StallError(self._stall)
        try:
            return call()
        except TimeoutError as exc:
            error = StallError.after(self._where, self._seconds, doing)
            self._stall = str(error)
            with contextlib.suppress(Exception):
                self._drop()
            raise error from exc

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)  # close, settimeout, get_name, recv_ready, ...


class _Reads:
    """A file's bytes by pipelined READ requests, each reply received into its place.

    paramiko's `readv` copies every reply several times in Python (its packet
    reader grows a bytes object per receive); here the reply's data goes from
    the socket straight into the chunk it belongs to. At most `READ_WINDOW`
    bytes are requested ahead of the chunk being handed out. Replies are
    matched by request number, so a server may answer in any order, and a
    short reply is asked again for the rest.

    The connection is shared: a caller may write or stat between two chunks
    (the resume check reads a partial while the upload writes on). So every
    READ is registered with paramiko like its own requests are: a reply to one
    of ours that paramiko reads comes back here (copied, the slow path), and a
    reply to another request that we read is handed to whoever waits for it.
    """

    def __init__(self, client: paramiko.SFTPClient, handle: bytes, full: str, request: int) -> None:
        self._client = client
        self._sock = cast(_Watchdog, client.sock)  # SftpStore put it there
        self._handle = handle
        self._full = full
        self._request = request
        self._chunk = request * max(1, READ_CHUNK // request)
        self._waiting: dict[int, tuple[memoryview, int, list[int]]] = {}
        self._error: Exception | None = None  # from a reply paramiko read for us

    def chunks(self, size: int) -> Iterator[bytearray]:
        ready: deque[tuple[bytearray, list[int]]] = deque()
        offset = 0
        try:
            while offset < size or ready:
                while offset < size and len(ready) * self._chunk < READ_WINDOW:
                    buffer = bytearray(min(self._chunk, size - offset))
                    missing = [0]
                    self._ask(memoryview(buffer), offset, missing)
                    ready.append((buffer, missing))
                    offset += len(buffer)
                while ready[0][1][0] or self._error:
                    _guard(f"read {self._full}", self._step)
                yield ready.popleft()[0]
        finally:
            self._drain()

    def _step(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        self._receive()

    def _ask(self, view: memoryview, offset: int, missing: list[int]) -> None:
        """READ requests for `view` (the file's bytes from `offset`), sent in one write."""
        client = self._client
        requests = []
        for start in range(0, len(view), self._request):
            piece = view[start : start + self._request]
            with client._lock:  # type: ignore[attr-defined]  # as _Requests.send_write
                num: int = client.request_number
                client._expecting[num] = self  # type: ignore[attr-defined]
                client.request_number = num + 1
            self._waiting[num] = (piece, offset + start, missing)
            missing[0] += 1
            requests.append(
                struct.pack(
                    ">IBII", 1 + 4 + 4 + len(self._handle) + 8 + 4, CMD_READ, num, len(self._handle)
                )
                + self._handle
                + struct.pack(">QI", offset + start, len(piece))
            )
        _guard(f"read {self._full}", lambda: _send_all(self._sock, memoryview(b"".join(requests))))

    def _receive(self) -> None:
        """One reply: its data into the chunk waiting for it, or its error raised; a reply
        to another request goes to whoever waits for it, as paramiko would hand it."""
        length, kind, num = struct.unpack(">IBI", self._exactly(9))
        waiting = self._waiting.pop(num, None)
        with self._client._lock:  # type: ignore[attr-defined]
            owner = self._client._expecting.pop(num, None)  # type: ignore[attr-defined]
        if waiting is None:
            body = Message(bytes(self._exactly(length - 5)))
            if owner is None or isinstance(owner, type):  # nobody, or a call paramiko waits on
                raise SftpStatus(SFTP_BAD_MESSAGE, f"reply to request {num}, not one pending")
            owner._async_response(kind, body, num)
            return
        view, offset, missing = waiting
        if kind != CMD_DATA:
            self._settle(kind, Message(bytes(self._exactly(length - 5))), offset)
        (count,) = struct.unpack(">I", self._exactly(4))
        if count > len(view) or length != 9 + count:
            raise SftpStatus(SFTP_BAD_MESSAGE, f"read reply of {count} bytes to {len(view)} asked")
        self._into(view[:count])
        self._got(view, offset, missing, count)

    def _async_response(self, kind: int, msg: Message, num: int) -> None:
        """A reply to one of our READs that paramiko read while serving another request."""
        waiting = self._waiting.pop(num, None)
        if waiting is None:
            return  # a reader already given up on
        view, offset, missing = waiting
        try:
            if kind != CMD_DATA:
                self._settle(kind, msg, offset)
            data = msg.get_binary()
            if len(data) > len(view):
                raise SftpStatus(
                    SFTP_BAD_MESSAGE, f"read reply of {len(data)} bytes, {len(view)} asked"
                )
            view[: len(data)] = data
            self._got(view, offset, missing, len(data))
        except Exception as exc:  # raised to the reader at its next chunk, not to the writer
            self._error = self._error or exc

    def _settle(self, kind: int, msg: Message, offset: int) -> NoReturn:
        """A READ answered with something other than data: always an error."""
        if kind != CMD_STATUS:
            raise SftpStatus(SFTP_BAD_MESSAGE, f"reply type {kind} to a read")
        code, text = msg.get_int(), msg.get_text()
        if code == SFTP_EOF:
            raise IntegrityError(f"{self._full} ends before byte {offset}: it shrank while read")
        raise SftpStatus(code, text)

    def _got(self, view: memoryview, offset: int, missing: list[int], count: int) -> None:
        missing[0] -= 1
        if count < len(view):  # a short reply: ask again for the rest
            self._ask(view[count:], offset + count, missing)

    def _exactly(self, count: int) -> memoryview:
        view = memoryview(bytearray(count))
        self._into(view)
        return view

    def _into(self, view: memoryview) -> None:
        while view:
            got = self._sock.recv_into(view)
            if got <= 0:
                raise EOFError("the SFTP channel is closed")
            view = view[got:]

    def _drain(self) -> None:
        """Read the replies still owed (a reader that stopped early), so the next request's
        reply is the next one on the connection; what cannot be read is unregistered."""
        with contextlib.suppress(Exception):
            while self._waiting:
                self._receive()
        with self._client._lock:  # type: ignore[attr-defined]
            for num in self._waiting:
                self._client._expecting.pop(num, None)  # type: ignore[attr-defined]
        self._waiting.clear()


class SftpStore:
    """A directory on an SFTP server, reached over one verified SSH transport."""

    def __init__(
        self,
        endpoint: SshEndpoint,
        root: str,
        *,
        openssh_client: bool = False,
        umask: int = PRIVATE_UMASK,
    ) -> None:
        self.endpoint = endpoint
        self.root = root
        # Sent with each create (OPEN, MKDIR): the server applies them as it creates, so a
        # file is never readable by others even for a moment (its own umask may narrow them).
        self.file_mode = 0o666 & ~umask
        self.dir_mode = 0o777 & ~umask
        # The root as the user wrote it in target.url (settings/urls.TargetUrl): a root below
        # the login directory keeps its `~/`, so the URL pasted back names the same directory.
        shown = root if root.startswith("/") else f"/~/{root}"
        self.description = f"sftp://{endpoint.user}@{endpoint.host}:{endpoint.port}{shown}"
        self._transport: paramiko.Transport | None = None
        self._channel: OpenSshChannel | None = None
        if openssh_client:
            self._channel = OpenSshChannel(endpoint)
            try:
                # SFTPClient is typed for a paramiko Channel; it only sends, receives and closes,
                # which OpenSshChannel does over the ssh process's socket.
                client = paramiko.SFTPClient(self._channel)  # type: ignore[arg-type]
            except _CONNECTION_ERRORS as exc:
                failure = self._channel.failure()
                self._channel.close()
                raise failure from exc
            server = self._channel.server_version
        else:
            self._transport = connect(endpoint)
            try:
                maybe = paramiko.SFTPClient.from_transport(self._transport)
            except _CONNECTION_ERRORS as exc:
                active = self._transport.is_active()  # still up: the subsystem was refused
                self._transport.close()
                if active:
                    raise sftp_refused(endpoint) from exc
                raise StoreError(f"{self.description}: connection lost: {exc}") from exc
            assert maybe is not None  # None only without a transport
            client = maybe
            channel = client.get_channel()
            assert channel is not None
            channel.settimeout(endpoint.timeout)
            server = self._transport.remote_version or ""
        # Every byte to and from the server passes the watchdog (paramiko's own calls too).
        watchdog = _Watchdog(client.sock, self.description, endpoint.timeout, self._drop)
        client.sock = watchdog  # type: ignore[assignment]  # it has what paramiko calls
        self._sftp = client
        self._requests = _Requests(client)
        self._fsync_offered = True  # until the server says otherwise
        openssh = "OpenSSH" in server
        # OpenSSH's sftp-server runs requests one at a time, in order: an fsync sent
        # behind writes flushes them (`_CheckedWriter.sync_later`). Others may not.
        self._in_order = openssh
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
            # lstat, as the listing: a symlink is reported as one, never followed.
            attrs = _guard(f"stat {full}", lambda: self._sftp.lstat(full))
        except FileNotFoundError:
            return None
        return _entry(posixpath.basename(full), attrs)

    def makedirs(self, path: str) -> None:
        """Directories below the root; the root itself must exist (see `create_root`)."""
        root = self._path("")
        if self.stat_raw(root) is None:
            raise root_missing(self.description)
        self._mkdirs(self._path(path), len(root.split("/")) if root != "." else 0)

    def create_root(self) -> None:
        self._mkdirs(self._path(""), 0)

    def _mkdirs(self, full: str, existing: int) -> None:
        """Create the missing directories of `full` after its first `existing` parts."""
        parts = full.split("/")
        for i in range(existing + 1, len(parts) + 1):
            current = "/".join(parts[:i])
            if not current or current == ".":
                continue
            if self.stat_raw(current) is None:
                mkdir = functools.partial(self._sftp.mkdir, current, self.dir_mode)
                try:
                    _guard(f"mkdir {current}", mkdir)
                except StoreError as exc:
                    space = self.space(posixpath.dirname(current) or ".")
                    if space is not None and space.read_only:
                        raise ReadOnlyError.at(self.description) from exc
                    raise

    def stat_raw(self, full: str) -> paramiko.SFTPAttributes | None:
        try:
            return _guard(f"stat {full}", lambda: self._sftp.stat(full))
        except FileNotFoundError:
            return None

    def open_write(self, path: str) -> _CheckedWriter:
        full = self._path(path)
        flags = SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_EXCL
        try:
            kind, msg = _guard(
                f"create {full}",
                lambda: self._raise_exists(
                    full, lambda: self._requests.call(CMD_OPEN, full, flags, self._new_file())
                ),
            )
        except StoreError as exc:
            raise self._explain_create_failure(full, exc) from exc
        if kind != CMD_HANDLE:
            raise StoreError(f"create {full}: unexpected SFTP reply {kind}")
        return _CheckedWriter(self, full, msg.get_binary())

    def _new_file(self) -> SFTPAttributes:
        attributes = SFTPAttributes()
        attributes.st_mode = self.file_mode
        return attributes

    def open_append(self, path: str, offset: int) -> _CheckedWriter:
        """Open an existing file, cut it to `offset` (SETSTAT size: ftruncate on the server)."""
        full = self._path(path)
        entry = self.stat(path)
        if entry is None:
            raise FileNotFoundError(errno.ENOENT, f"{full}: no such file")
        if entry.size < offset:
            raise short_file(full, entry.size, offset)
        kind, msg = _guard(
            f"open {full}",
            lambda: self._requests.call(CMD_OPEN, full, SFTP_FLAG_WRITE, SFTPAttributes()),
        )
        if kind != CMD_HANDLE:
            raise StoreError(f"open {full}: unexpected SFTP reply {kind}")
        handle = msg.get_binary()
        size = SFTPAttributes()
        size.st_size = offset
        writer = _CheckedWriter(self, full, handle, offset=offset)
        try:
            _guard(f"truncate {full}", lambda: self._requests.call(CMD_FSETSTAT, handle, size))
        except BaseException:
            writer.abort()
            raise
        return writer

    def _raise_exists(
        self, full: str, action: Callable[[], tuple[int, Message]]
    ) -> tuple[int, Message]:
        """SFTP v3 reports an exclusive create over an existing file as a plain failure."""
        try:
            return action()
        except SftpStatus as exc:
            if exc.code == SFTP_FAILURE and self.stat_raw(full) is not None:
                raise FileExistsError(errno.EEXIST, f"{full} exists") from exc
            raise

    def _explain_create_failure(self, full: str, exc: StoreError) -> Exception:
        cause = exc.__cause__
        space = self.space(posixpath.dirname(full) or ".")
        name = posixpath.basename(full)
        if space is not None and space.read_only:  # SFTP v3 says only "Failure" for EROFS
            return ReadOnlyError.at(self.description)
        if space is not None and len(name.encode()) > space.name_max:
            return NameTooLongError(
                f"create {full}: the name is {len(name.encode())} bytes, the backup server "
                f"allows {space.name_max}"
            )
        if isinstance(cause, SftpStatus) and cause.code == SFTP_BAD_MESSAGE:
            return PermanentError(f"create {full}: the backup server refuses this name")
        if space is not None and space.free_bytes < FULL_THRESHOLD:
            return self.disk_full(f"create {full}", space)
        return exc

    def disk_full(self, action: str, space: Space) -> DiskFullError:
        return DiskFullError(f"{action}: backup server disk is full", free_bytes=space.free_bytes)

    def touch(self, path: str, mtime: float | None = None) -> None:
        full = self._path(path)
        now = time.time() if mtime is None else mtime
        _guard(f"touch {full}", lambda: self._sftp.utime(full, (now, now)))

    def space(self, path: str) -> Space | None:
        full = self._path(path)
        try:
            kind, msg = self._requests.call(CMD_EXTENDED, "statvfs@openssh.com", full)
        except SftpStatus:
            return None  # not offered (or the path is gone): nothing to say
        except _CONNECTION_ERRORS:
            return None
        if kind != CMD_EXTENDED_REPLY:
            return None
        fields = [msg.get_int64() for _ in range(11)]
        _bsize, frsize, _blocks, _bfree, bavail = fields[:5]
        read_only = bool(fields[9] & STATVFS_READ_ONLY)
        return Space(free_bytes=bavail * frsize, name_max=fields[10], read_only=read_only)

    def fsync(self, handle: bytes, full: str) -> None:
        """Ask the server to flush a file to disk, where it offers `fsync@openssh.com`."""
        if self._fsync_offered:
            self.fsync_done(self.fsync_request(handle), full)

    def fsync_request(self, handle: bytes) -> int:
        """Send `fsync@openssh.com` for `handle` without waiting; `fsync_done` reads its reply."""
        return self._requests.send(CMD_EXTENDED, "fsync@openssh.com", handle)

    def fsync_done(self, num: int, full: str) -> None:
        """The reply to fsync request `num`: raise if the flush failed."""
        try:
            self._requests.wait(num)
        except SftpStatus as exc:
            if exc.code != SFTP_OP_UNSUPPORTED:
                raise
            self._fsync_offered = False
            log.info("%s does not offer fsync@openssh.com: files are not flushed", full)

    def open_read(self, path: str) -> ReadHandle:
        full = self._path(path)
        return _guard(f"open {full}", lambda: self._sftp.open(full, "rb", bufsize=1024 * 1024))

    def read_chunks(self, path: str) -> Iterator[bytes | bytearray]:
        full = self._path(path)
        handle = _guard(f"open {full}", lambda: self._sftp.open(full, "rb", bufsize=0))
        with handle:
            size = _guard(f"stat {full}", handle.stat).st_size or 0
            reads = _Reads(self._sftp, cast(bytes, handle.handle), full, self._read_request_size)
            yield from reads.chunks(size)

    def rename(self, source: str, destination: str) -> None:
        src, dst = self._path(source), self._path(destination)
        _guard(f"rename {src}", lambda: self._sftp.posix_rename(src, dst))

    def remove(self, path: str) -> None:
        full = self._path(path)
        with contextlib.suppress(FileNotFoundError):
            _guard(f"remove {full}", lambda: self._sftp.remove(full))

    def _drop(self) -> None:
        """End the connection after a stall: the server's late replies can never be matched."""
        if self._transport is not None:
            self._transport.close()
        if self._channel is not None:
            self._channel.close()

    def close(self) -> None:
        self._sftp.close()
        self._drop()


class _CheckedWriter(WriterBase):
    """Pipelined writes to a new file; `close()` checks every reply, fsyncs, closes.

    At most `WRITE_WINDOW` bytes are in flight; each reply is read in order,
    so an error anywhere (a full disk, an I/O error) fails the upload instead
    of leaving a hole in a file that later looks complete.
    """

    def __init__(self, store: SftpStore, full: str, handle: bytes, *, offset: int = 0) -> None:
        self._store = store
        self._requests = store._requests
        self._full = full
        self._handle = handle
        self._request_size = store._write_request_size
        self._window = max(1, WRITE_WINDOW // self._request_size)
        self._pending: deque[int] = deque()  # requests sent, replies not yet read (in order)
        self._fsyncs: set[int] = set()  # which of them are fsyncs (`sync_later`)
        self._flushed: set[int] = set()  # fsyncs whose reply said the bytes are durable
        self._offset = offset
        self._open = True

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data).cast("B")
        for start in range(0, len(view), self._request_size):
            piece = view[start : start + self._request_size]
            num = _guard(
                f"write {self._full}",
                functools.partial(self._requests.send_write, self._handle, self._offset, piece),
            )
            self._offset += len(piece)
            self._pending.append(num)
            while len(self._pending) > self._window:
                self._acknowledge(self._pending.popleft())
        return len(view)

    def _acknowledge(self, num: int) -> None:
        if num in self._fsyncs:
            self._fsyncs.discard(num)
            store = self._store
            _guard(f"fsync {self._full}", lambda: store.fsync_done(num, self._full))
            self._flushed.add(num)
            return
        try:
            _guard(f"write {self._full}", lambda: self._requests.wait(num))
        except StallError:
            raise
        except StoreError as exc:
            raise self._explain(exc) from exc

    def _explain(self, exc: StoreError) -> Exception:
        """A write failure with little space left is a full disk (SFTP v3 says only 'Failure')."""
        space = self._store.space(posixpath.dirname(self._full) or ".")
        if space is not None and space.read_only:
            return ReadOnlyError.at(self._store.description)
        if space is not None and space.free_bytes < FULL_THRESHOLD:
            return self._store.disk_full(f"write {self._full}", space)
        return exc

    def sync(self) -> None:
        while self._pending:
            self._acknowledge(self._pending.popleft())
        _guard(f"fsync {self._full}", lambda: self._store.fsync(self._handle, self._full))

    def sync_later(self) -> Flush:
        """The fsync goes out behind the writes and its reply is read in turn with theirs
        (after every earlier write's reply, each checked), so the next writes are sent
        while the server flushes. Only with OpenSSH's sftp-server, which runs requests in
        order; other servers sync at once. Measured: see the docs' benchmarks page."""
        if not (self._store._fsync_offered and self._store._in_order):
            self.sync()
            return FLUSHED
        num = _guard(f"fsync {self._full}", lambda: self._store.fsync_request(self._handle))
        self._fsyncs.add(num)
        self._pending.append(num)
        return _PendingFlush(self, num)

    def _acknowledge_through(self, num: int) -> None:
        """Read replies in order up to and including request `num`'s."""
        while self._pending and self._pending[0] <= num:
            self._acknowledge(self._pending.popleft())

    @property
    def closed(self) -> bool:
        return not self._open

    def _release(self) -> None:
        self._open = False
        _guard(f"close {self._full}", lambda: self._requests.call(CMD_CLOSE, self._handle))

    def abort(self) -> None:
        """Close the handle without checking what is still in flight."""
        if not self._open:
            return
        self._open = False
        self._pending.clear()
        self._fsyncs.clear()
        with contextlib.suppress(Exception):
            self._requests.call(CMD_CLOSE, self._handle)
        self._requests.forget()


class _PendingFlush:
    """An fsync request of a `_CheckedWriter`, answered or not yet."""

    def __init__(self, writer: _CheckedWriter, num: int) -> None:
        self._writer = writer
        self._num = num

    def done(self) -> bool:
        return self._num in self._writer._flushed

    def wait(self) -> None:
        if not self.done():
            self._writer._acknowledge_through(self._num)
        if not self.done():  # the writer was aborted: its replies will never be read
            raise StoreError(f"fsync {self._writer._full}: the file was closed before its reply")


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
