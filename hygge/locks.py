"""Run locks: one run of a flow into a destination at a time, across processes and machines.

Two `hygge run` of one flow at once (a cron overlap) would both read the same new data and
both append it. A store hands the Flow a `RunLock` (`Store.lock()`), held from before the
first attempt until the last one ended; a second run is refused with a clear message, or
waits (`hygge run --wait-for-lock`). The lock lives where the destination lives, so it also
holds between machines that share it: an `flock` on a file beside a folder, an advisory lock
in the database. A lock held by a process that died is released by the kernel or the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import ClassVar
from urllib.parse import quote

from hygge.errors import FlowLocked, StoreError

POLL_SECONDS = 0.5
log = logging.getLogger("hygge.locks")


class RunLock:
    """A lock on one destination for one flow. Subclasses implement `try_acquire`/`release`.

    Used as `async with store.lock(flow, wait=...)`, or with `acquire()` and `release()`.
    """

    locks: ClassVar[bool] = True  # False: a lock that holds nothing (NoLock); -v says nothing

    def __init__(self, flow: str, where: str) -> None:
        self.flow = flow
        self.where = where  # what the message shows: a path or a masked table name

    def try_acquire(self) -> bool:
        """Take the lock if it is free; False when another run holds it. Blocking is fine
        (it runs in a thread)."""
        raise NotImplementedError

    def release(self) -> None:
        """Drop the lock (idempotent)."""

    def confirm(self) -> None:
        """Raise FlowLocked when this run no longer holds the lock, right before a commit.
        Only a lock that expires can be lost while its holder lives (an object-store lock
        whose holder stopped renewing it); a file's flock or a database's advisory lock is
        held for as long as the process or its session is."""

    async def acquire(
        self, *, wait: bool = False, on_wait: Callable[[str], None] | None = None
    ) -> None:
        """Take the lock; when another run holds it, wait for it (`wait`, telling `on_wait`
        once) or refuse."""
        told = False
        while not await asyncio.to_thread(self.try_acquire):
            if wait and on_wait is not None and not told:
                on_wait(f"waiting for the run of '{self.flow}' into {self.where} to end")
                told = True
            if not wait:
                raise FlowLocked(
                    f"flow '{self.flow}' is already running into {self.where} (another "
                    "`hygge run` or a worker holds its lock); this run moved nothing",
                    hint="let that run finish, or use `hygge run --wait-for-lock` to wait",
                )
            await asyncio.sleep(POLL_SECONDS)
        if self.locks:
            log.debug(
                "flow '%s': run lock taken on %s (%s)", self.flow, self.where, self.describe()
            )

    def describe(self) -> str:
        """-v: what kind of lock this is: its class's first sentence, and the lock object's
        URL when it has one (an object-store lock)."""
        doc = (type(self).__doc__ or type(self).__name__).split(".")[0]
        text = re.sub(r"\s*\([^)]*\)", "", " ".join(doc.split()))
        text = text[:1].lower() + text[1:]
        url = getattr(self, "url", None)
        if isinstance(url, str):
            from hygge.secrets import mask_url

            text += f": {mask_url(url)}"
        return text

    async def __aenter__(self) -> RunLock:
        await self.acquire()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.release)


class NoLock(RunLock):
    """For stores that cannot lock (a plugin store without a path): never refuses."""

    locks = False

    def try_acquire(self) -> bool:
        return True


class FileLock(RunLock):
    """An exclusive `flock` on a lock file, removed again on release.

    Removing a lock file is safe only with a check: a run that opened the file just before
    the holder removed it would lock an orphan. So after taking the flock, a run checks that
    the path still names the file it locked, and starts over if not.
    """

    def __init__(self, flow: str, where: str, path: Path) -> None:
        super().__init__(flow, where)
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                return True
            os.close(fd)  # the holder removed it meanwhile: lock the new one

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        except PermissionError as exc:
            raise StoreError(
                f"cannot write to {self.where}: {self.path.parent} is not writable",
                hint="choose a writable path or fix the folder's permissions",
            ) from exc
        except OSError as exc:
            raise StoreError(f"cannot create the lock file {self.path}: {exc.strerror}") from exc

    def describe(self) -> str:
        return f"an exclusive flock on {self.path}"

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()  # while still holding it: see the class docstring
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing drops the flock
            self._fd = None


def lock_file_beside(target: Path, flow: str) -> Path:
    """`lake/.orders.hygge-lock.FLOW` for the dataset `lake/orders`: beside it, not inside
    (a replace swaps the dataset folder, and a lock inside would move with it), hidden from
    readers globbing the data, and there only while the flow runs."""
    return target.with_name(f".{target.name}.hygge-lock.{file_name(flow)}")


def file_name(name: str) -> str:
    """`name` as one plain file name: never a path (`/` and `..` escaped, never hidden).

    Config refuses such flow names already; this keeps the Python API and any other caller
    inside the store too. Plain names (letters, digits, `_-.`) stay as they are.
    """
    encoded = quote(name, safe="")
    return "%2E" + encoded[1:] if encoded.startswith(".") else encoded
