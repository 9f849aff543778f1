"""The Open Mirroring landing zone of a Fabric mirrored database, as Microsoft documents it
("Open mirroring landing zone requirements and format"), on the local disk or object storage.

    <landing zone>/_partnerEvents.json            who writes here (database level)
    <landing zone>/[<schema>.schema/]<table>/     one folder per table
        _metadata.json                            {"keyColumns": [...]}: never changed
        00000000000000000001.parquet              data files, a continuous 20-digit sequence;
        00000000000000000002.parquet              `__rowMarker__` last (0 insert, 1 update,
                                                  2 delete, 4 upsert)
        _hygge/                                   hygge's state, kept with the data
    <landing zone>/_hygge/<table>/                staging and the commit journal of a run

Files and folders whose names start with `_` belong to the service and its partners
(`_metadata.json`, `_partnerEvents.json`, the replicator's own `_ProcessedFiles`); the
replicator reads data files by their 20-digit names only. A data file is written complete
under `_hygge/` and then renamed to its number, so the replicator never sees half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pyarrow as pa
import pyarrow.fs as pafs

from hygge.errors import HyggeError, StoreError
from hygge.secrets import mask_url

if TYPE_CHECKING:
    from hygge.storage.objects import ObjectStorage

METADATA = "_metadata.json"
PARTNER_EVENTS = "_partnerEvents.json"
MARKER = "__rowMarker__"
INSERT, UPDATE, DELETE, UPSERT = 0, 1, 2, 4
HIDDEN = "_hygge"
SEQUENCE_DIGITS = 20
T = TypeVar("T")
DATA_FILE = re.compile(r"^(\d{20})\.parquet$")
# Where the replicator moves files it has processed (it leaves the last one in place so a
# writer can continue the sequence); the numbers there count too.
PROCESSED_FOLDERS = ("_ProcessedFiles", "_FilesReadyToDelete")
# Characters OneLake / ADLS Gen2 refuse or treat specially in a path segment, and Windows'
# reserved ones (the Fabric portal and tools open these folders there too).
_BAD_CHARS = re.compile(r'[\x00-\x1f\x7f"*/:<>?\\|#%]')


def data_file_name(number: int) -> str:
    return f"{number:0{SEQUENCE_DIGITS}d}.parquet"


def folder_problem(name: str, what: str = "table") -> str | None:
    """Why `name` cannot be a table (or schema) folder of a landing zone, or None."""
    if not name or not name.strip():
        return f"the {what} name is empty"
    if name != name.strip():
        return f"the {what} name {name!r} starts or ends with a space"
    if name in (".", ".."):
        return f"{name!r} is not a folder name"
    if name.startswith(("_", ".")):
        return (
            f"the {what} name {name!r} starts with '{name[0]}', which the landing zone keeps "
            "for the service's own files"
        )
    bad = _BAD_CHARS.search(name)
    if bad:
        return f"the {what} name {name!r} holds {bad.group()!r}, which cannot be in a folder name"
    if name.endswith("."):
        return f"the {what} name {name!r} ends with '.'"
    if what == "table" and name.lower().endswith(".schema"):
        return f"the table name {name!r} ends with '.schema', which marks a schema folder"
    if len(name.encode()) > 255:
        return f"the {what} name is longer than 255 bytes"
    return None


@dataclass
class Tree:
    """A folder on a pyarrow filesystem (the local disk, a bucket or container), by relative
    paths; object-store failures become clear StoreErrors."""

    fs: pafs.FileSystem
    root: str  # filesystem path of the landing zone (local: absolute)
    url: str  # the landing zone as the user wrote it (for messages)
    local: bool
    storage: ObjectStorage | None = None  # on object storage: its bucket check, sign-in

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *(p.strip("/") for p in parts if p)])

    def where(self, *parts: str) -> str:
        return mask_url("/".join([self.url.rstrip("/"), *(p.strip("/") for p in parts if p)]))

    # -- reading ------------------------------------------------------------------------
    def listing(self, *parts: str) -> list[tuple[str, bool]]:
        """(name, is_folder) of what is directly in a folder; [] when it does not exist."""
        selector = pafs.FileSelector(self.path(*parts), recursive=False, allow_not_found=True)
        infos = self._call(parts, "list", lambda: self.fs.get_file_info(selector))
        return sorted(
            (i.base_name, i.type == pafs.FileType.Directory)
            for i in infos
            if i.type in (pafs.FileType.File, pafs.FileType.Directory)
        )

    def kind(self, *parts: str) -> pafs.FileType:
        info = self._call(parts, "read", lambda: self.fs.get_file_info(self.path(*parts)))
        return info.type

    def exists(self, *parts: str) -> bool:
        return bool(self.kind(*parts) != pafs.FileType.NotFound)

    def read_bytes(self, *parts: str) -> bytes | None:
        if self.kind(*parts) != pafs.FileType.File:
            return None

        def read() -> bytes:
            with self.fs.open_input_stream(self.path(*parts)) as f:
                return cast(bytes, f.read())  # pyarrow ships no type hints

        return self._call(parts, "read", read)

    def read_json(self, *parts: str) -> Any:
        data = self.read_bytes(*parts)
        if data is None:
            return None
        try:
            return json.loads(data)
        except ValueError as exc:
            raise StoreError(
                f"{self.where(*parts)} is not valid JSON ({exc})",
                hint="fix or remove that file",
            ) from exc

    # -- writing ------------------------------------------------------------------------
    def mkdir(self, *parts: str) -> None:
        self._call(parts, "write", lambda: self.fs.create_dir(self.path(*parts), recursive=True))

    def open_output(self, *parts: str) -> Any:
        path = self.path(*parts)
        if self.local:
            self.mkdir(os.path.dirname(self._rel(path)))
        return self._call(parts, "write", lambda: self.fs.open_output_stream(path))

    def write_json(self, value: Any, *parts: str) -> None:
        """Whole or not at all: a local file goes through a temporary name; an object is one
        upload, which appears complete."""
        data = json.dumps(value, indent=2, default=str).encode()
        if not self.local:
            path = self.path(*parts)
            if len(parts) > 1 or "/" in parts[0]:
                self.mkdir(os.path.dirname("/".join(parts)))

            def put() -> None:
                with self.fs.open_output_stream(path) as f:
                    f.write(data)

            return self._call(parts, "write", put)
        target = self.path(*parts)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        # A name of this writer's own: entity flows of one landing zone write the database's
        # _partnerEvents.json at the same moment, and must not rename each other's file.
        unique = f"{os.getpid()}-{secrets.token_hex(4)}"
        tmp = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.{unique}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        fsync_dir(os.path.dirname(target))

    def move(self, src: str, dst: str) -> None:
        """Rename: atomic on a local disk and on ADLS Gen2 / OneLake. A flat-namespace store
        (Blob, S3, GCS) has no rename: a server-side copy (the object appears complete) and
        a delete."""
        parent = os.path.dirname(dst)
        if parent:
            self.mkdir(parent)
        if self.local:
            os.replace(self.path(src), self.path(dst))
            return
        try:
            self.fs.move(self.path(src), self.path(dst))
        except (NotImplementedError, OSError) as exc:
            if "not supported" not in str(exc).lower() and not isinstance(exc, NotImplementedError):
                raise self._error((src,), "rename", exc) from exc
            self._call((src,), "copy", lambda: self.fs.copy_file(self.path(src), self.path(dst)))
            self.delete_file(src)

    def delete_file(self, *parts: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._call(parts, "delete", lambda: self.fs.delete_file(self.path(*parts)))

    def delete_dir(self, *parts: str) -> None:
        if self.kind(*parts) == pafs.FileType.NotFound:
            return
        with contextlib.suppress(FileNotFoundError):
            self._call(parts, "delete", lambda: self.fs.delete_dir(self.path(*parts)))

    def remove_if_empty(self, *parts: str) -> bool:
        """Remove a folder with nothing in it (hygge's hidden area after a run); True if it
        is gone."""
        if self.kind(*parts) != pafs.FileType.Directory:
            return True
        if self.listing(*parts):
            return False
        self.delete_dir(*parts)
        return True

    def sync(self, *parts: str) -> None:
        """Local files reach the disk before they become visible (no-op elsewhere)."""
        if self.local:
            fd = os.open(self.path(*parts), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    # -- helpers ------------------------------------------------------------------------
    def _rel(self, path: str) -> str:
        return path[len(self.root.rstrip("/")) :].lstrip("/")

    def _call(self, parts: tuple[str, ...], what: str, action: Callable[[], T]) -> T:
        try:
            return action()
        except FileNotFoundError:
            raise
        except (OSError, pa.ArrowException) as exc:  # Azure's failed sign-in: ArrowException
            if self.local:
                raise StoreError(
                    f"cannot {what} {self.where(*parts)}: {getattr(exc, 'strerror', None) or exc}",
                    hint="check the path and its permissions",
                ) from exc
            raise self._error(parts, what, exc) from exc

    def _error(self, parts: Any, what: str, exc: BaseException) -> HyggeError:
        from hygge.storage.objects import storage_error

        return storage_error(self.where(*parts), what, exc)


def fsync_dir(path: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_landing_zone(tree: Tree) -> None:
    """Refuse a path that is not a landing zone: a file, a table folder (it holds
    `_metadata.json` or numbered files), a folder of data files. A missing or empty folder
    is a new landing zone."""
    kind = tree.kind()
    if kind == pafs.FileType.File:
        raise StoreError(
            f"{tree.where()} is a file, not a landing zone folder",
            hint="point `path` at the landing zone folder",
        )
    if kind != pafs.FileType.Directory:
        return
    entries = tree.listing()
    names = {n for n, _ in entries}
    stray = [n for n, d in entries if not d and DATA_FILE.match(n)]
    if METADATA in names or stray:
        raise StoreError(
            f"{tree.where()} is a table folder (it holds "
            f"{METADATA if METADATA in names else stray[0]}), not a landing zone",
            hint="point `path` at the landing zone itself; the table goes in `table`",
        )
    foreign = [
        n
        for n, d in entries
        if not d and not n.startswith(("_", ".")) and n.endswith((".parquet", ".csv"))
    ]
    if foreign:
        raise StoreError(
            f"{tree.where()} holds data files ({foreign[0]}), so it is not a landing "
            "zone (which holds table folders)",
            hint="point `path` at an empty folder or a mirrored database's landing zone",
        )


def last_number(tree: Tree, table: str) -> int:
    """The highest data file number of a table folder (0: none yet), counting the files the
    replicator moved to its processed folders."""
    numbers = [0]
    for folder in ("", *PROCESSED_FOLDERS):
        for name, is_dir in tree.listing(table, folder):
            found = DATA_FILE.match(name)
            if found and not is_dir:
                numbers.append(int(found.group(1)))
    return max(numbers)


# -- the commit journal ---------------------------------------------------------------------
# A run's commit is written down before it starts, with every file's final name, then
# carried out; a run that dies midway is finished by the next one from the journal, so the
# sequence never has a gap, a number twice or a file half there.


def apply_journal(tree: Tree, journal: str) -> None:
    """Carry out a commit journal (idempotent: every step checks whether it is done)."""
    plan = tree.read_json(journal)
    if plan is None:
        return
    table = plan["table"]
    if plan.get("reset"):
        # Microsoft's documented reset: the table folder is deleted and created again, and
        # the replicator drops the mirrored table and loads it anew from file 1.
        tree.delete_dir(table)
        plan["reset"] = False
        tree.write_json(plan, journal)
    if tree.kind(table, METADATA) != pafs.FileType.File:
        tree.write_json(plan["metadata"], table, METADATA)
    for src, dst in plan["moves"]:
        if tree.exists(src):
            tree.move(src, dst)
    for rel, value in plan.get("json", {}).items():
        tree.write_json(value, rel)
    for src, dst in plan.get("replace", []):
        if tree.exists(src):
            tree.move(src, dst)
    for rel in plan.get("delete", []):
        tree.delete_file(rel)
    if tree.local:  # the renames reach the disk before the journal goes
        fsync_dir(tree.path(table))
    tree.delete_dir(plan["staging"])
    tree.delete_file(journal)
    tidy(tree, os.path.dirname(journal))


def tidy(tree: Tree, folder: str) -> None:
    """Remove hygge's staging folders at the landing zone's root once empty, up to `_hygge`
    itself: between runs the landing zone holds only what the replicator reads."""
    while folder and folder.split("/", 1)[0] == HIDDEN:
        if not tree.remove_if_empty(folder):
            return
        folder = os.path.dirname(folder)
