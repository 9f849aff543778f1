"""Finding input files: one file, a directory (recursively), or a glob."""

from __future__ import annotations

import glob
from pathlib import Path

from hygge.errors import HomeError

GLOB_CHARS = set("*?[")


def expand_paths(path: str, suffixes: tuple[str, ...]) -> list[Path]:
    """The files a home reads, sorted so runs are repeatable.

    A directory yields every file below it whose name ends with one of `suffixes`; hidden
    files and folders (staging areas, `_hygge` metadata) are skipped.
    """
    if GLOB_CHARS & set(path):
        files = [Path(p) for p in glob.glob(path, recursive=True) if Path(p).is_file()]
        if not files:
            raise HomeError(
                f"no files match {path}", hint="check the pattern and the folder it points into"
            )
        return sorted(files)
    target = Path(path)
    if target.is_file():
        return [target]
    if target.is_dir():
        files = [
            p
            for p in target.rglob("*")
            if p.is_file()
            and p.name.lower().endswith(suffixes)
            and not any(part.startswith((".", "_")) for part in p.relative_to(target).parts)
        ]
        if not files:
            raise HomeError(
                f"folder {path} holds no {'/'.join(suffixes)} files",
                hint="point `path` at the data files, or set `type` to match them",
            )
        return sorted(files)
    raise HomeError(
        f"input not found: {path}",
        hint="check the path; relative paths are resolved from the folder of flows.yml",
    )
