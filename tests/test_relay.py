"""The read relay (hygge/sql/relay.py and its child, relay_child.py) between a client and a
real local TCP server: it passes at most a window of the server's bytes ahead of what the
reader took, all of them while the reader waits, and the client's bytes freely."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from hygge.sql.relay import Relay
from hygge.sql.relay_child import CHUNK

PAYLOAD = 24 << 20
WINDOW = 1 << 20


@pytest.fixture
def server() -> Iterator[tuple[int, list[bytes]]]:
    """A server that reads one line from its client, then sends PAYLOAD bytes and closes."""
    listener = socket.create_server(("127.0.0.1", 0))
    heard: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, contextlib.suppress(OSError):  # the relay went away (the close test)
            heard.append(conn.makefile("rb").readline())
            conn.sendall(b"x" * PAYLOAD)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], heard
    listener.close()
    thread.join(5)


def receive_until_quiet(sock: socket.socket, quiet: float = 0.5) -> int:
    """Bytes received until none came for `quiet` seconds (or the peer closed or reset)."""
    sock.settimeout(quiet)
    got = 0
    while True:
        try:
            data = sock.recv(1 << 20)
        except (TimeoutError, ConnectionResetError):
            return got
        if not data:
            return got
        got += len(data)


def test_the_relay_passes_a_window_ahead_of_the_reader(server: tuple[int, list[bytes]]) -> None:
    port, heard = server
    with Relay("127.0.0.1", port, window=WINDOW) as relay:
        relay.waiting(False)  # the reader works on a batch: only the window passes
        with socket.create_connection(("127.0.0.1", relay.port)) as client:
            client.sendall(b"hello\n")  # the client's bytes pass freely
            first = receive_until_quiet(client)
            assert heard == [b"hello\n"]
            assert WINDOW <= first <= WINDOW + CHUNK
            relay.took(first)  # a batch taken: another window passes
            second = receive_until_quiet(client)
            assert WINDOW <= second <= WINDOW + CHUNK
            relay.waiting()  # the reader waits: everything passes
            rest = receive_until_quiet(client, quiet=5)
            assert first + second + rest == PAYLOAD


def test_the_child_ends_with_its_parent_s_close(server: tuple[int, list[bytes]]) -> None:
    port, _ = server
    relay = Relay("127.0.0.1", port, window=WINDOW)
    client = socket.create_connection(("127.0.0.1", relay.port))
    client.sendall(b"hello\n")
    started = time.monotonic()
    relay.close()  # the reader stopped midway: the child closes its sockets and exits
    assert relay._child.returncode == 0
    assert time.monotonic() - started < 5
    assert receive_until_quiet(client, quiet=5) < PAYLOAD
    client.close()
