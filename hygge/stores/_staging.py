"""Staging folders of file stores: owned through a lock file, swept once their owner is gone.

A run holds an exclusive `flock` on `<staging>.lock` for as long as it stages. The kernel
drops the lock when the process dies, however it dies (SIGKILL included), so the next run into
the same dataset can tell a dead run's leftovers from a live run's work and delete only those.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from pathlib import Path

STAGING_MARK = ".hygge-staging-"


def staging_path(target: Path, run_id: str) -> Path:
    """The hidden sibling folder where a run stages files for `target`."""
    return target.with_name(f".{target.name}{STAGING_MARK}{run_id}")


class StagingLock:
    """The lock a run holds on its staging folder while it runs."""

    def __init__(self, staging: Path) -> None:
        self.path = _lock_file(staging)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock; created before the folder, so no folder is ever unowned."""
        self._fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self) -> None:
        """Drop the lock; called after the staging folder is gone (published or deleted)."""
        if self._fd is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            os.close(self._fd)
            self._fd = None


def sweep_dead(target: Path) -> list[Path]:
    """Delete staging folders of `target` whose runs have died; returns what was deleted."""
    parent = target.parent
    if not parent.is_dir():
        return []
    swept = []
    for folder in parent.glob(f".{target.name}{STAGING_MARK}*"):
        if folder.suffix == ".lock":
            if not folder.with_suffix("").exists() and _owner_gone(folder):
                folder.unlink(missing_ok=True)  # its folder was published or rolled forward
            continue
        if not folder.is_dir():
            continue
        lock = _lock_file(folder)
        if lock.exists() and not _owner_gone(lock):
            continue  # a live run is staging there
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
        swept.append(folder)
    return swept


def _lock_file(staging: Path) -> Path:
    return staging.with_name(staging.name + ".lock")


def _owner_gone(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing drops the lock we may have taken
    return True


def sweep_abandoned_parts(target: Path, mark: str, max_age_seconds: float) -> list[Path]:
    """Delete the parts folders of partitioned runs of `target` untouched for longer than
    `max_age_seconds`: runs whose commit never came (every worker gone). A live run's parts
    folder changes while its partitions stage, and its commit comes within the run."""
    parent = target.parent
    if not parent.is_dir():
        return []
    now = time.time()
    swept = []
    for folder in parent.glob(f".{target.name}{mark}*"):
        newest = max((p.stat().st_mtime for p in [folder, *folder.iterdir()]), default=now)
        if folder.is_dir() and now - newest > max_age_seconds:
            shutil.rmtree(folder, ignore_errors=True)
            swept.append(folder)
    return swept
