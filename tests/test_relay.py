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

from hygge.sql import relay_child
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


def test_a_batch_larger_than_its_bytes_on_the_wire_banks_no_credit(
    server: tuple[int, list[bytes]],
) -> None:
    """The reader counts Arrow bytes, the relay wire bytes: where a batch's Arrow form is the
    larger (lineitem's is about 3% larger), the surplus must not add up into credit, or the
    window would grow with the table (at SF3 it had let connectorx 62 MB further ahead)."""
    port, _ = server
    with Relay("127.0.0.1", port, window=WINDOW) as relay:
        relay.waiting(False)
        with socket.create_connection(("127.0.0.1", relay.port)) as client:
            client.sendall(b"hello\n")
            first = receive_until_quiet(client)
            assert WINDOW <= first <= WINDOW + CHUNK
            relay.took(4 * first)  # more Arrow bytes than wire bytes forwarded
            second = receive_until_quiet(client)
            assert WINDOW <= second <= WINDOW + CHUNK  # one window still, not four


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


def test_a_short_reply_that_comes_late_passes() -> None:
    """A database's short replies (a handshake, a slow query's answer) often come after the
    relay's brief wait for a full chunk: each must still pass at once, not wait for bytes
    that will never come."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, contextlib.suppress(OSError), conn.makefile("rb") as lines:
            for _ in range(3):
                lines.readline()
                time.sleep(0.2)  # the answer takes a while
                conn.sendall(b"ok\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with Relay("127.0.0.1", listener.getsockname()[1], window=WINDOW) as relay:
            relay.waiting()
            with socket.create_connection(("127.0.0.1", relay.port)) as client:
                client.settimeout(60)  # a bound for a busy machine; it used to hang forever
                for _ in range(3):
                    client.sendall(b"question\n")
                    assert client.recv(16) == b"ok\n"
    finally:
        listener.close()
        thread.join(5)


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """Two connected TCP sockets on 127.0.0.1 (the relay only ever sees TCP)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        one = socket.create_connection(listener.getsockname())
        other, _ = listener.accept()
    return one, other


@pytest.mark.parametrize("way", ["_copy", "_splice_gated"])
def test_both_ways_of_forwarding_pass_every_byte_and_late_replies(way: str) -> None:
    """The server-to-client pump forwards by splice(2) where Linux has it, else through its
    own buffer (`_copy`): both pass a late short reply at once, and a payload whole."""
    upstream, server_side = tcp_pair()
    client, relay_side = tcp_pair()
    gate = relay_child.Gate(WINDOW)  # waiting: everything passes
    forward = getattr(relay_child, way)
    thread = threading.Thread(target=forward, args=(upstream, relay_side, gate), daemon=True)
    thread.start()
    try:
        client.settimeout(60)
        time.sleep(0.2)  # the relay waits for a full chunk first
        server_side.sendall(b"ok\n")
        assert client.recv(16) == b"ok\n"

        def send() -> None:  # in a thread: the client reads while the server sends
            server_side.sendall(b"y" * PAYLOAD)
            server_side.close()  # the end: the pump returns

        threading.Thread(target=send, daemon=True).start()
        got = 0
        while chunk := client.recv(1 << 20):
            got += len(chunk)
            if got == PAYLOAD:
                break
        assert got == PAYLOAD
        thread.join(60)
        assert not thread.is_alive()
        assert gate.forwarded == PAYLOAD + 3
    finally:
        for s in (upstream, server_side, client, relay_side):
            s.close()
