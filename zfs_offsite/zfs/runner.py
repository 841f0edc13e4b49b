"""Run commands here or on another host over SSH, always from an argv list.

Pull mode runs `zfs` on the NAS through an SshRunner, so the NAS holds no
credential to the archive. Remote argv elements are each shell-quoted, because
an SSH exec request is one string that the remote login shell splits.
"""

from __future__ import annotations

import contextlib
import shlex
import subprocess
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import paramiko

from zfs_offsite.errors import PermanentError, TransientError
from zfs_offsite.transport.ssh import SshEndpoint, connect

STDERR_KEEP = 64 * 1024


@dataclass(frozen=True)
class CommandResult:
    """A finished command: exit status and its text output."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def last_line(stderr: str) -> str:
    """What a failed command said last: usually the one line that explains it."""
    lines = stderr.strip().splitlines()
    return lines[-1] if lines else "(no message)"


class CommandFailed(PermanentError):
    """A command exited non-zero; `stderr` holds what it said."""

    def __init__(self, result: CommandResult) -> None:
        super().__init__(
            f"`{shlex.join(result.argv)}` exited {result.returncode}: {last_line(result.stderr)}"
        )
        self.result = result


class ByteSource(Protocol):
    """What a command's stdout or stderr is to us, locally or over an SSH channel."""

    def read(self, size: int = -1, /) -> bytes: ...
    def close(self) -> None: ...


class ByteSink(Protocol):
    """What a command's stdin is to us, locally or over an SSH channel."""

    @property
    def closed(self) -> bool: ...
    def write(self, data: bytes | bytearray, /) -> object: ...
    def flush(self) -> object: ...
    def close(self) -> None: ...


class Process(Protocol):
    """A running command whose stdout (or stdin) is streamed."""

    @property
    def stdout(self) -> ByteSource | None: ...
    @property
    def stdin(self) -> ByteSink | None: ...

    def close_stdin(self) -> None: ...
    def wait(self) -> int: ...
    def stderr_text(self) -> str: ...
    def kill(self) -> None: ...


class Runner(Protocol):
    """Where commands run: this host or the NAS over SSH."""

    host: str

    def run(self, argv: Sequence[str], *, check: bool = True) -> CommandResult: ...
    def start(self, argv: Sequence[str], *, stdin: bool = False) -> Process: ...
    def close(self) -> None: ...


class _StderrTail:
    """Drains a stderr stream in a thread so a chatty command cannot block on it."""

    def __init__(self, stream: ByteSource) -> None:
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._thread.start()

    def _drain(self, stream: ByteSource) -> None:
        while chunk := stream.read(4096):
            self._chunks.append(chunk)
            self._size += len(chunk)
            while self._size > STDERR_KEEP and len(self._chunks) > 1:
                self._size -= len(self._chunks.popleft())

    def text(self, timeout: float = 5.0) -> str:
        self._thread.join(timeout)
        return b"".join(self._chunks).decode(errors="replace")


PIPE_BYTES = 1024 * 1024  # at most /proc/sys/fs/pipe-max-size's default, so no privilege needed


class LocalProcess:
    """A subprocess on this host."""

    def __init__(self, argv: Sequence[str], stdin: bool) -> None:
        # A session of its own: a terminal's Ctrl-C reaches this process, which stops
        # the command itself (and cleans up), rather than `zfs send` dying mid-stream.
        self._popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL if stdin else subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            # 1 MiB of pipe (Linux; 16x the default): `zfs send` keeps sending while the
            # reader compresses and hashes (bench.throughput: 1.06x the MB/s, twice), and
            # `zfs receive` keeps receiving while restore decompresses (fewer, larger writes).
            pipesize=PIPE_BYTES,
        )
        self.stdout = self._popen.stdout
        self.stdin = self._popen.stdin
        assert self._popen.stderr is not None  # stderr=PIPE
        self._stderr = _StderrTail(self._popen.stderr)

    def close_stdin(self) -> None:
        if self.stdin is not None and not self.stdin.closed:
            self.stdin.close()

    def wait(self) -> int:
        return self._popen.wait()

    def stderr_text(self) -> str:
        return self._stderr.text()

    def kill(self) -> None:
        if self._popen.poll() is None:
            self._popen.kill()
            self._popen.wait(timeout=10)
        # zfs-fuse's daemon reads our pipe itself: it must see EOF, or the pool stays busy.
        with contextlib.suppress(OSError):
            self.close_stdin()


class LocalRunner:
    """Runs commands on this host."""

    host = "localhost"

    def run(self, argv: Sequence[str], *, check: bool = True) -> CommandResult:
        try:
            done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
        except FileNotFoundError as exc:
            raise PermanentError(f"`{argv[0]}` is not installed on this host") from exc
        result = CommandResult(tuple(argv), done.returncode, done.stdout, done.stderr)
        if check and result.returncode != 0:
            raise CommandFailed(result)
        return result

    def start(self, argv: Sequence[str], *, stdin: bool = False) -> Process:
        try:
            return LocalProcess(argv, stdin)
        except FileNotFoundError as exc:
            raise PermanentError(f"`{argv[0]}` is not installed on this host") from exc

    def close(self) -> None:
        """Nothing to release for local commands."""


class SshProcess:
    """A command running over an SSH exec channel."""

    def __init__(self, channel: paramiko.Channel, stdin: bool) -> None:
        self._channel = channel
        self.stdout = None if stdin else channel.makefile("rb", 1024 * 1024)
        self.stdin = channel.makefile_stdin("wb") if stdin else None
        self._stderr = _StderrTail(channel.makefile_stderr("rb"))

    def close_stdin(self) -> None:
        if self.stdin is not None:
            self.stdin.flush()
            self._channel.shutdown_write()

    def wait(self) -> int:
        return self._channel.recv_exit_status()

    def stderr_text(self) -> str:
        return self._stderr.text()

    def kill(self) -> None:
        self._channel.close()


class SshRunner:
    """Runs commands on another host through one SSH transport (opened lazily)."""

    def __init__(self, endpoint: SshEndpoint) -> None:
        self.endpoint = endpoint
        self.host = endpoint.host
        self._transport: paramiko.Transport | None = None
        self._lock = threading.Lock()

    def _channel(self, argv: Sequence[str]) -> paramiko.Channel:
        with self._lock:
            if self._transport is None or not self._transport.is_active():
                self._transport = connect(self.endpoint)
            try:
                channel = self._transport.open_session(timeout=self.endpoint.timeout)
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise TransientError(f"ssh session to {self.host} failed: {exc}") from exc
        channel.exec_command(shlex.join(argv))
        return channel

    def run(self, argv: Sequence[str], *, check: bool = True) -> CommandResult:
        channel = self._channel(argv)
        with channel:
            stdout = channel.makefile("rb")
            stderr = _StderrTail(channel.makefile_stderr("rb"))
            out = stdout.read().decode(errors="replace")
            code = channel.recv_exit_status()
            result = CommandResult(tuple(argv), code, out, stderr.text())
        if check and result.returncode != 0:
            raise CommandFailed(result)
        return result

    def start(self, argv: Sequence[str], *, stdin: bool = False) -> Process:
        return SshProcess(self._channel(argv), stdin)

    def close(self) -> None:
        with self._lock:
            if self._transport is not None:
                self._transport.close()
                self._transport = None
