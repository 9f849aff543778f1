"""The relay's child process (see hygge/sql/relay.py): a TCP relay on 127.0.0.1 that forwards
the server's bytes to the client while fewer than `window` bytes are unaccounted for, or
whenever the reader waits for a batch.

    python -I -S hygge/sql/relay_child.py HOST PORT WINDOW

It prints the port it listens on, then reads its parent's messages on stdin, one a line:
`t N` (the reader took N bytes), `w 1` / `w 0` (the reader waits for a batch / works on one),
`n N` (the window is N bytes). It ends when stdin closes, and closes its sockets.

Stdlib only and run by its path, not `-m`: `-m` would import the hygge package first
(polars and pyarrow, about 0.6 s and 100 MB) for a process that only moves bytes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import socket
import sys
import threading
from collections.abc import Iterable

CHUNK = 1 << 18  # bytes per recv (or splice)
# The server's bytes are taken LOWAT at a time, or what came within LINGER_MS (so a short
# reply waits at most that): woken per ~32 KB packet, the relay cost 1.0-1.4 CPU-s on
# lineitem SF1, 0.76-0.94 s this way (and hygge's process 0.1-0.2 s less system time, as it
# reads bigger chunks too).
LOWAT = 64 << 10
LINGER_MS = 1
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)  # Linux; Python 3.10+ names it


class Gate:
    """What the reader has taken against what was forwarded; the server-to-client pump
    waits here while the reader is a window behind and not waiting."""

    def __init__(self, window: int) -> None:
        self.forwarded = 0
        self.taken = 0
        self.waiting = True
        self.window = window
        self.closed = False
        self.cond = threading.Condition()

    def free(self) -> bool:
        return self.closed or self.waiting or self.forwarded - self.taken < self.window

    def wait_open(self) -> bool:
        """Block until bytes may pass; False once the relay closes."""
        with self.cond:
            self.cond.wait_for(self.free)
            return not self.closed

    def passed(self, nbytes: int) -> None:
        with self.cond:
            self.forwarded += nbytes

    def apply(self, line: str) -> None:
        """One message from the parent."""
        kind, _, value = line.partition(" ")
        with self.cond:
            if kind == "t":
                # Arrow bytes against wire bytes: a batch larger in Arrow than on the wire
                # must not bank the surplus as credit, or the window grows with the table
                # (lineitem: 3% larger; at SF3 connectorx ran 62 MB further ahead by the end)
                self.taken = min(self.taken + int(value), self.forwarded)
            elif kind == "w":
                self.waiting = value.strip() == "1"
            elif kind == "n":
                self.window = int(value)
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


def pump(src: socket.socket, dst: socket.socket, gate: Gate | None) -> None:
    """Copy src to dst until either side ends (through `gate` when given), then shut both."""
    try:
        if gate is not None and hasattr(os, "splice"):
            _splice_gated(src, dst, gate)
        else:
            _copy(src, dst, gate)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def _copy(src: socket.socket, dst: socket.socket, gate: Gate | None) -> None:
    """Through this process's memory: the client's bytes (small), or the server's where the
    kernel has no splice(2)."""
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    # the server's bytes: woken per LOWAT bytes, not per packet (where poll(2) exists)
    poller = _lowat_poller(src) if gate is not None and hasattr(select, "poll") else None
    while gate is None or gate.wait_open():
        if poller is not None:
            poller.poll(LINGER_MS)  # LOWAT bytes, or what came within LINGER_MS
        try:
            n = src.recv_into(buf, 0, socket.MSG_DONTWAIT if poller is not None else 0)
        except BlockingIOError:  # nothing came: wait for a byte, without spinning
            assert poller is not None  # only a non-blocking recv raises it
            _wait_for_a_byte(src, poller)
            continue
        if not n:
            return
        dst.sendall(view[:n])
        if gate is not None:
            gate.passed(n)


def _splice_gated(src: socket.socket, dst: socket.socket, gate: Gate) -> None:
    """The server's bytes through a pipe with splice(2): the kernel moves them from one
    socket to the other without copying them into this process and out again. On lineitem
    SF1 (MariaDB -> parquet, 7 interleaved runs) the relay's CPU fell from a median of
    0.68 s (0.41-0.79, most of it system time) to 0.47 s (0.29-0.59)."""
    read_end, write_end = os.pipe()
    try:
        with contextlib.suppress(OSError):  # a bigger pipe: fewer calls (at most the limit)
            fcntl.fcntl(write_end, F_SETPIPE_SZ, CHUNK)
        poller = _lowat_poller(src)
        source, sink = src.fileno(), dst.fileno()
        while gate.wait_open():
            # LOWAT bytes, or what came within LINGER_MS; a splice that found nothing would
            # wait for LOWAT bytes too, so a short reply is waited for as in `_copy`
            if not poller.poll(LINGER_MS) and not _has_bytes(src):
                _wait_for_a_byte(src, poller)
                continue
            n = os.splice(source, write_end, CHUNK)  # what is there; 0: the server closed
            if not n:
                return
            left = n
            while left:  # the whole pipe on to the client (blocking: TCP flow control)
                left -= os.splice(read_end, sink, left)
            gate.passed(n)
    finally:
        os.close(read_end)
        os.close(write_end)


def _lowat_poller(sock: socket.socket) -> select.poll:
    """A poller for `sock` that wakes once LOWAT bytes are there (`poll(LINGER_MS)` then
    returns what came meanwhile)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, LOWAT)
    return poller


def _wait_for_a_byte(sock: socket.socket, poller: select.poll) -> None:
    """Block until a byte (or the end) comes: the kernel wakes a poller only once LOWAT bytes
    are there, which a short reply never reaches."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
    poller.poll()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, LOWAT)


def _has_bytes(sock: socket.socket) -> bool:
    """A byte (or the end) is there to read, without taking it."""
    try:
        sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    return True


def serve(
    server: socket.socket, host: str, port: int, gate: Gate, sockets: list[socket.socket]
) -> None:
    """Accept clients; each gets its own upstream connection and two pumps."""
    while True:
        try:
            client, _ = server.accept()
        except OSError:
            return
        try:
            upstream = socket.create_connection((host, port))
        except OSError:
            client.close()
            continue
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sockets.extend((client, upstream))
        threading.Thread(target=pump, args=(client, upstream, None), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client, gate), daemon=True).start()


def main(argv: list[str], messages: Iterable[str]) -> None:
    host, port, window = argv[0], int(argv[1]), int(argv[2])
    gate = Gate(window)
    server = socket.create_server(("127.0.0.1", 0))
    sockets = [server]
    sys.stdout.write(f"{server.getsockname()[1]}\n")
    sys.stdout.flush()
    threading.Thread(target=serve, args=(server, host, port, gate, sockets), daemon=True).start()
    for line in messages:
        gate.apply(line)
    gate.close()
    for s in sockets:
        with contextlib.suppress(OSError):
            s.close()


if __name__ == "__main__":
    main(sys.argv[1:], sys.stdin)
