"""Backpressure for connectorx: a local TCP relay that holds back the server's bytes while
the reader is behind.

connectorx decodes a MySQL/MariaDB result on a thread of its own into an unbounded channel:
when the store writes slower than connectorx reads, the channel (and memory) grows with the
table. Its Python iterator also holds the GIL while it waits, so the relay cannot be a thread
of this process (it would wait for the GIL while the iterator waits for its bytes). It is a
small child process, stdlib only, between connectorx and the server: it forwards the
server's bytes while fewer than `window` bytes are unaccounted for (forwarded, but not yet
taken by the reader as Arrow batches), or whenever the reader waits for a batch (so it never
deadlocks, whatever the ratio of wire to Arrow bytes). The server then waits on TCP flow
control, as it does for any slow client (hygge raises the session's `net_write_timeout`).

The child ends when this process closes its stdin (or dies), and takes its sockets with it.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from types import TracebackType

# The child: stdlib only, so it starts in milliseconds and stays small.
_CHILD = r"""
import socket, sys, threading

host, port, window = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
state = {"forwarded": 0, "taken": 0, "waiting": True, "window": window, "closed": False}
cond = threading.Condition()
server = socket.create_server(("127.0.0.1", 0))
sys.stdout.write(f"{server.getsockname()[1]}\n")
sys.stdout.flush()
sockets = [server]

def free():
    return state["closed"] or state["waiting"] or (
        state["forwarded"] - state["taken"] < state["window"]
    )

def pump(src, dst, throttled):
    buf = bytearray(1 << 18)
    view = memoryview(buf)
    try:
        while True:
            if throttled:
                with cond:
                    cond.wait_for(free)
                    if state["closed"]:
                        return
            n = src.recv_into(buf)
            if not n:
                break
            dst.sendall(view[:n])
            if throttled:
                with cond:
                    state["forwarded"] += n
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

def accept():
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
        threading.Thread(target=pump, args=(client, upstream, False), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client, True), daemon=True).start()

threading.Thread(target=accept, daemon=True).start()
for line in sys.stdin:
    kind, _, value = line.partition(" ")
    with cond:
        if kind == "t":
            state["taken"] += int(value)
        elif kind == "w":
            state["waiting"] = value.strip() == "1"
        elif kind == "n":
            state["window"] = int(value)
        cond.notify_all()
with cond:
    state["closed"] = True
    cond.notify_all()
for s in sockets:
    try:
        s.close()
    except OSError:
        pass
"""


class Relay:
    """`with Relay(host, port) as relay:` connect to 127.0.0.1:`relay.port` instead; call
    `waiting()` before asking for a batch and `took(nbytes)` once one arrived."""

    def __init__(self, host: str, port: int, window: int = 32 << 20) -> None:
        self._child = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _CHILD, host, str(port), str(window)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert self._child.stdout is not None and self._child.stdin is not None
        line = self._child.stdout.readline()
        if not line.strip().isdigit():
            self.close()
            raise OSError("the read relay did not start")
        self.port = int(line)
        self._stdin = self._child.stdin

    def _say(self, message: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # the child is gone: reading fails
            self._stdin.write(message + "\n")

    def waiting(self, waiting: bool = True) -> None:
        """The reader waits for a batch (True): forward freely; or it works on one."""
        self._say(f"w {int(waiting)}")

    def took(self, nbytes: int) -> None:
        """The reader took a batch of `nbytes` Arrow bytes and works on it."""
        self._say(f"t {nbytes}")
        self._say("w 0")

    def window(self, nbytes: int) -> None:
        """At most this many bytes forwarded ahead of what the reader took."""
        self._say(f"n {nbytes}")

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            if self._child.stdin is not None:
                self._child.stdin.close()
        try:
            self._child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()
        if self._child.stdout is not None:
            self._child.stdout.close()

    def __enter__(self) -> Relay:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
