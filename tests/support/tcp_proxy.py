"""A TCP proxy on 127.0.0.1 in front of a store that fails the way a network does.

The S3 fault tests put it between the CLI and the RGW: `cut_after(n)` drops every
connection once n bytes went up on it (a link that dies mid-part, every time,
until `heal`); `cut_reads(match, n)` drops a connection once n bytes came down in
answer to a request whose line holds `match` (a GET that dies mid-body);
`cut_now()` drops the connections open now; `down()` refuses new connections (the
endpoint unreachable: a closed port answers RST) until `up()`.
The bytes a client sends up are counted (`sent`), as a link would see them, and
the HTTP request lines noted (`requests`): how often a request was tried.
`rate` throttles the way up: an upload long enough to kill mid-way.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class FaultyProxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`target_port`, with faults on demand."""

    def __init__(self, target_port: int, port: int = 0, rate: float | None = None) -> None:
        self.target_port = target_port
        self.rate = rate  # bytes a second up, per connection (None: as fast as it goes)
        self.sent = 0  # bytes forwarded up, all connections
        self.cuts = 0  # connections cut by `cut_after` or `cut_now`
        self.requests: list[str] = []  # HTTP request lines seen ("PUT /bucket/key?... HTTP/1.1")
        self._limit: int | None = None
        self._read_cut: tuple[str, int] | None = None
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._closed = False
        self.port = port
        self._listener: socket.socket | None = None
        self.up()

    # ------------------------------------------------------------------ faults

    def cut_after(self, limit: int | None) -> None:
        """Cut each connection once `limit` bytes went up on it (None: never)."""
        self._limit = limit

    def cut_reads(self, match: str, after: int) -> None:
        """Cut each connection once `after` bytes came down in answer to a request whose
        first line contains `match`, every time, until `heal`."""
        self._read_cut = (match, after)

    def heal(self) -> None:
        """No more cutting: connections pass whole."""
        self._limit = None
        self._read_cut = None

    def cut_now(self) -> None:
        """Drop every connection open now (a reset mid-request)."""
        with self._lock:
            sockets = list(self._open)
            self.cuts += len(sockets) // 2
        _close(*sockets)

    def down(self) -> None:
        """Refuse new connections (the port closed) and drop the open ones."""
        listener, self._listener = self._listener, None
        if listener is not None:
            _close(listener)
        self.cut_now()

    def up(self) -> None:
        """Accept connections again, on the same port."""
        if self._listener is not None or self._closed:
            return
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self.down()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ forwarding

    def _accept(self, listener: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = listener.accept()
                try:
                    upstream = socket.create_connection(("127.0.0.1", self.target_port))
                except OSError:
                    _close(client)
                    continue
                with self._lock:
                    self._open.update((client, upstream))
                answering = _Answer()  # the connection's last request and bytes sent back
                for source, sink, up in ((client, upstream, True), (upstream, client, False)):
                    threading.Thread(
                        target=self._pump, args=(source, sink, up, answering), daemon=True
                    ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, up: bool, answer: _Answer) -> None:
        carried = 0
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                cut = self._read_cut
                if not up and cut is not None and cut[0] in answer.request:
                    if answer.down + len(data) > cut[1]:
                        sink.sendall(data[: max(0, cut[1] - answer.down)])
                        with self._lock:
                            self.cuts += 1
                        break
                    answer.down += len(data)
                if up:
                    limit = self._limit
                    if limit is not None and carried + len(data) > limit:
                        if limit > carried:  # forward up to the limit, then cut
                            sink.sendall(data[: limit - carried])
                            self._count(limit - carried)
                        with self._lock:
                            self.cuts += 1
                        break
                    carried += len(data)
                    self._count(len(data))
                    if line := self._note_request(data):
                        answer.request, answer.down = line, 0
                sink.sendall(data)
                if up and self.rate:
                    time.sleep(len(data) / self.rate)
        with self._lock:
            self._open.difference_update((source, sink))
        _close(source, sink)

    def _note_request(self, data: bytes) -> str | None:
        """Record a request's first line when a chunk starts one (how a client writes)."""
        if not data.startswith((b"GET ", b"HEAD ", b"PUT ", b"POST ", b"DELETE ")):
            return None
        line = data.split(b"\r\n", 1)[0].decode("latin-1")
        with self._lock:
            self.requests.append(line)
        return line

    def _count(self, size: int) -> None:
        with self._lock:
            self.sent += size


class _Answer:
    """One connection's last request line and the bytes that came down since."""

    def __init__(self) -> None:
        self.request = ""
        self.down = 0


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()
