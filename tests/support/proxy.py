"""TCP forwarders on loopback: one cuts a connection (a real drop), one throttles (a slow link)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class _Forwarder:
    """Forwards 127.0.0.1:port to a target; subclasses decide what `_pump` does to the bytes."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.sent = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
                self._sockets += [client, upstream]
                threading.Thread(
                    target=self._pump, args=(client, upstream, True), daemon=True
                ).start()
                threading.Thread(
                    target=self._pump, args=(upstream, client, False), daemon=True
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, upward: bool) -> None:
        raise NotImplementedError

    @staticmethod
    def _close(*sockets: socket.socket) -> None:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        self._listener.close()
        self._close(*self._sockets)


class CuttingProxy(_Forwarder):
    """Forwards 127.0.0.1:port to a target; cuts a connection once `cut_after` bytes went up.

    Only the first `cuts` connections that get that far are cut; later ones pass.
    `after_cut` counts the bytes sent up after the first cut, on any connection:
    what a retry costs on the wire.
    """

    def __init__(self, target_port: int, cut_after: int, cuts: int = 1_000_000) -> None:
        self.cut_after = cut_after
        self.cuts_left = cuts
        self.cut = threading.Event()
        self.after_cut = 0
        self._count = threading.Lock()
        super().__init__(target_port)

    def _pump(self, source: socket.socket, sink: socket.socket, upward: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if upward and self._cuts(len(data)):
                    self._close(source, sink)
                    return
                sink.sendall(data)
        if upward:
            self._close(source, sink)

    def _cuts(self, size: int) -> bool:
        """Count `size` bytes going up; True if the connection is to be cut before them."""
        with self._count:
            if self.cut.is_set():
                self.after_cut += size
            if self.cuts_left <= 0:
                return False
            self.sent += size
            if self.sent <= self.cut_after:
                return False
            self.cuts_left -= 1
            self.sent = 0
            if self.cut.is_set():
                self.after_cut -= size  # never forwarded
            self.cut.set()
            return True


class ThrottlingProxy(_Forwarder):
    """Forwards 127.0.0.1:port to a target, sending upward at most `rate` bytes a second.

    A slow link on loopback: long enough uploads for two runs to overlap, or
    for a signal to land mid-stream.
    """

    def __init__(self, target_port: int, rate: int) -> None:
        self.rate = rate
        super().__init__(target_port)

    def _pump(self, source: socket.socket, sink: socket.socket, upward: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(16384):
                sink.sendall(data)
                if upward:
                    self.sent += len(data)
                    time.sleep(len(data) / self.rate)
        self._close(source, sink)
