"""Atomic publication of a staged folder: swap it with the live one in a single step."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from pathlib import Path

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_libc = (
    ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if sys.platform == "linux" else None
)
_renameat2 = getattr(_libc, "renameat2", None)


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE). False if unsupported."""
    if _renameat2 is None:
        return False
    rc = _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: the filesystem cannot exchange
        return False
    raise OSError(err, os.strerror(err), str(a))


def replace_dir(staged: Path, live: Path) -> Path | None:
    """Make `staged` the folder at `live`. Returns where the old folder now is, to delete.

    Readers see the old folder or the new one, never a mix. Where the OS cannot exchange two
    folders, falls back to two renames (live -> backup, staged -> live); `recover` repairs the
    short gap between them if the process dies there.
    """
    if not live.exists():
        os.replace(staged, live)
        return None
    if exchange(staged, live):
        return staged  # the old folder now sits where the staged one was
    backup = live.with_name(f".{live.name}.hygge-old")
    os.replace(live, backup)
    os.replace(staged, live)
    return backup


def recover(live: Path) -> None:
    """Undo a fallback swap interrupted between its two renames."""
    backup = live.with_name(f".{live.name}.hygge-old")
    if backup.exists() and not live.exists():
        os.replace(backup, live)
