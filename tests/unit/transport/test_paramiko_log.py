"""paramiko's own failure tracebacks stay out of the logs unless DEBUG is asked for.

A real paramiko transport against a real socket that is not an SSH server: its
transport thread logs the failure as an ERROR traceback; the caller gets one
typed line instead, so that traceback belongs at DEBUG (the worker log, -v).
"""

from __future__ import annotations

import logging
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from zfs_offsite.errors import ZfsOffsiteError
from zfs_offsite.transport.ssh import TRANSPORT_LOG, SshEndpoint, connect


@pytest.fixture
def not_ssh() -> Iterator[int]:
    """A local port that answers like a web server, then hangs up."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    yield port
    server.close()


def endpoint(tmp_path: Path, port: int) -> SshEndpoint:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    known = tmp_path / "known_hosts"
    known.write_text("")
    return SshEndpoint("127.0.0.1", port, "backup", key, known, timeout=5)


class Kept(logging.Handler):
    """A handler at level 0 on the root, as Prefect's console and API handlers are."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(TRANSPORT_LOG):
            self.records.append(record)


@pytest.fixture
def kept() -> Iterator[Kept]:
    handler, core = Kept(), logging.getLogger("zfs_offsite")
    level = core.level
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)
    core.setLevel(level)


def test_paramiko_failure_is_not_logged_at_info(tmp_path: Path, not_ssh: int, kept: Kept) -> None:
    logging.getLogger("zfs_offsite").setLevel(logging.INFO)  # the flows' level for the core
    with pytest.raises(ZfsOffsiteError):
        connect(endpoint(tmp_path, not_ssh))
    assert kept.records == []


def test_paramiko_failure_is_there_at_debug(tmp_path: Path, not_ssh: int, kept: Kept) -> None:
    logging.getLogger("zfs_offsite").setLevel(logging.DEBUG)
    with pytest.raises(ZfsOffsiteError):
        connect(endpoint(tmp_path, not_ssh))
    assert kept.records and {r.levelno for r in kept.records} == {logging.DEBUG}
