"""Backpressure for connectorx: a local TCP relay that holds back the server's bytes while
the reader is behind.

connectorx decodes a MySQL/MariaDB result on a thread of its own into an unbounded channel:
when the store writes slower than connectorx reads, the channel (and memory) grows with the
table. Its Python iterator also holds the GIL while it waits, so the relay cannot be a thread
of this process (it would wait for the GIL while the iterator waits for its bytes). It is a
small child process (hygge/sql/relay_child.py, stdlib only) between connectorx and the
server: it forwards the server's bytes while fewer than `window` bytes are unaccounted for
(forwarded, but not yet taken by the reader as Arrow batches), or whenever the reader waits
for a batch (so it never deadlocks, whatever the ratio of wire to Arrow bytes). The server
then waits on TCP flow control, as it does for any slow client (hygge raises the session's
`net_write_timeout`).

The child ends when this process closes its stdin (or dies), and takes its sockets with it.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from types import TracebackType

from hygge.sql import relay_child

CHILD = relay_child.__file__  # run by its path: see its docstring


class Relay:
    """`with Relay(host, port) as relay:` connect to 127.0.0.1:`relay.port` instead; call
    `waiting()` before asking for a batch and `took(nbytes)` once one arrived."""

    def __init__(self, host: str, port: int, window: int = 32 << 20) -> None:
        self._child = subprocess.Popen(
            [sys.executable, "-I", "-S", CHILD, host, str(port), str(window)],
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
