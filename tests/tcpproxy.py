"""A loopback TCP proxy a test can cut: every connection through it drops at once and new
ones are refused, as while a database server restarts, without touching the shared server."""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `upstream`; `cut()` drops everything, `restore()` heals."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down = threading.Event()
        self.refused = 0  # connections turned away while cut
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.upstream_ports: set[int] = set()  # our side of each server connection, ever
        self.closed = False
        threading.Thread(target=self._accept, name="tcpproxy", daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down.is_set():
                with self.lock:
                    self.refused += 1
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, server]
                self.upstream_ports.add(server.getsockname()[1])
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def drop_answer_to(self, *markers: bytes, after: bytes = b"") -> threading.Event:
        """The next request holding every one of `markers` (once a request holding `after`
        went by, if given) reaches the server, but its answer never comes back: that
        connection drops as the answer arrives (a write that landed, unheard). The event is
        set once it happened."""
        self._markers, self._after, self._dropped = markers, after, threading.Event()
        return self._dropped

    _markers: tuple[bytes, ...] = ()
    _after = b""  # a request to see first (its answer passes)
    _doomed: socket.socket | None = None  # the server side whose next answer is dropped
    _dropped = threading.Event()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if src is self._doomed:  # the answer: drop it and the connection
                    self._doomed, self._markers = None, ()
                    self._dropped.set()
                    break
                if self._after and self._after in data:
                    self._after = b""
                elif self._markers and not self._after and all(m in data for m in self._markers):
                    self._doomed, self._markers = dst, ()
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Drop every connection (both sides see it closed) and refuse new ones."""
        self.down.set()
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        self.down.clear()

    def close(self) -> None:
        self.closed = True
        self.cut()
        self.listener.close()
