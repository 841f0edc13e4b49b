"""A TCP forwarder on loopback that times every byte going up: the link's view of an upload.

The bandwidth tests measure here, outside the process under test, what a
network admin would see on the uplink: bytes towards the backup server per
second, SSH and SFTP framing included.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Measure:
    """Upward bytes in a stretch of time, and their rate."""

    bytes: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.bytes / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        return f"{self.bytes / 1e6:.1f} MB in {self.seconds:.1f} s = {self.rate / 1e6:.3f} MB/s"


class CountingProxy:
    """Forwards 127.0.0.1:port to `target_port`, recording (time, connection, size) upward."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.events: list[tuple[float, int, int]] = []
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            connection = 0
            while True:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
                self._sockets += [client, upstream]
                connection += 1
                for source, sink, up in ((client, upstream, True), (upstream, client, False)):
                    threading.Thread(
                        target=self._pump, args=(source, sink, up, connection), daemon=True
                    ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, up: bool, connection: int) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if up:
                    with self._lock:
                        self.events.append((time.monotonic(), connection, len(data)))
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def upward(self) -> int:
        with self._lock:
            return sum(size for _, _, size in self.events)

    def steady(self, skip: float = 0.01) -> Measure:
        """The rate from the moment `skip` of all upward bytes had passed to `1 - skip`.

        Leaves out the connection's set-up before the stream and the sidecars and
        renames after it, where the link is idle for reasons other than the limit.
        """
        with self._lock:
            events = sorted(self.events)
        total = sum(size for _, _, size in events)
        first, last = skip * total, (1 - skip) * total
        seen, start, start_bytes = 0, 0.0, 0
        for when, _, size in events:
            seen += size
            if not start_bytes and seen >= first:
                start, start_bytes = when, seen
            if seen >= last:
                return Measure(seen - start_bytes, when - start)
        return Measure(0, 0.0)

    def close(self) -> None:
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()
