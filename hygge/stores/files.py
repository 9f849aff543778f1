"""What file stores share: stage outside the dataset, roll files by rows, commit atomically.

On object storage (`s3://`, `az://`, `gs://`, ...) the same store stages and commits through
`hygge.stores.object_dataset.ObjectDataset` instead (no atomic rename there: a journal).

Layout: the dataset is the folder at `path`. A run stages its files in a hidden sibling
folder (`.NAME.hygge-staging-RUN`), never inside the dataset, so a reader globbing
`path/**/*.parquet` only ever sees committed files.

- replace: the staged folder is swapped in for the dataset in one atomic rename.
- append: the staged files are listed in a journal inside `path/_hygge/`, then renamed into
  the dataset; a run that dies midway is rolled forward by the next run from that journal.
- parts (partitioned flows): each part stages in its own folder under the flow run's hidden
  `.NAME.hygge-parts-RUN/`; the commit hard-links every part's files into one staging folder
  and publishes that as above. The parts stay until `abort_parts` removes them, so a commit
  that died midway (or whose end was not recorded) is simply done again: the same files
  under the same names, no duplicates even in append mode.

Over 400 lines: one store lifecycle (stage, roll files, verify, commit, abort, parts,
state) shared by parquet and CSV, local and object storage; the atomic swap, staging and the
object-store journal are their own modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import polars as pl
import pyarrow as pa
from pydantic import Field

from hygge.contract import (
    MultiPartStore,
    PathSetting,
    StatefulStore,
    Store,
    StoreSettings,
    default_path,
)
from hygge.errors import StoreError
from hygge.locks import file_name
from hygge.storage import is_object_url
from hygge.stores._atomic import recover, replace_dir
from hygge.stores._staging import StagingLock, staging_path, sweep_abandoned_parts, sweep_dead

if TYPE_CHECKING:
    from hygge.stores.object_dataset import ObjectDataset

META_DIR = "_hygge"
PARTS_MARK = ".hygge-parts-"
ABANDONED_PARTS_SECONDS = 7 * 24 * 3600  # a partitioned run's parts no commit came for
T = TypeVar("T")
_DISK_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
}


class FileStoreSettings(StoreSettings):
    path: PathSetting
    max_rows_per_file: int = Field(
        5_000_000, gt=0, description="Start a new file after this many rows."
    )
    # Object stores only: credentials/endpoints in delta-rs key names; see docs/objectstore.md.
    storage_options: dict[str, str] | None = None


class FileStore(MultiPartStore, StatefulStore, Store[FileStoreSettings]):
    """A folder of data files, written through a staging folder and published atomically."""

    abstract = True
    suffix: ClassVar[str]
    Settings: ClassVar[type[FileStoreSettings]] = FileStoreSettings

    @classmethod
    def defaults(cls, name: str, values: Mapping[str, Any]) -> dict[str, Any]:
        return {"path": default_path(name)}

    def __init__(self, name: str, settings: Any = None, **values: Any) -> None:
        super().__init__(name, settings, **values)
        self.remote = is_object_url(self.settings.path)
        self.target = Path(self.settings.path)
        # One file writer, touched from worker threads. A write runs in a thread that outlives
        # its cancelled task (the home failed): abort() and a retry's fresh staging wait for it
        # (closing a writer mid-write crashes pyarrow), and it never writes into those.
        # Re-entrant: abort() closes the writer while it holds the lock.
        self._io = threading.RLock()
        self._opened = False
        self._reset()

    def _reset(self) -> None:
        """Fresh staging state: every attempt of a flow stages from scratch."""
        self.run_id = uuid.uuid4().hex[:12]
        self.staging = staging_path(self.target, self.run_id)
        self._lock = StagingLock(self.staging)
        self._writer: Any = None
        self._file_index = 0
        self._rows_in_file = 0
        self._files: list[Path] = []
        self._states: dict[str, dict[str, Any]] = {}
        self._aborted = False
        self._stream: Any = None  # the object-store upload under the current writer
        self._dataset: ObjectDataset | None = None
        if self.remote:
            from hygge.stores.object_dataset import ObjectDataset  # loads pyarrow.fs

            self._dataset = ObjectDataset(
                self.settings.path, self.settings.storage_options, self.run_id
            )

    # -- format hooks -------------------------------------------------------------------
    def arrow_compat(self) -> pl.CompatLevel:
        """Arrow flavour handed to the writer. The oldest level gives plain string/binary
        types that every reader understands (pyarrow lacks many string_view kernels); the
        newest would be zero-copy, about 1 s faster per 6 M TPC-H lineitem rows."""
        return pl.CompatLevel.oldest()

    def open_writer(self, path: Path, schema: pa.Schema) -> Any:
        """A writer for one new data file."""
        raise NotImplementedError

    def write_chunk(self, writer: Any, table: pa.Table) -> None:
        """Append rows to the current file."""
        writer.write_table(table)

    def count_rows(self, path: Path) -> int | None:
        """Rows in a written file, read back from the file itself, or None if unknown."""
        return None

    # -- lifecycle ----------------------------------------------------------------------
    async def check(self) -> None:
        if self._dataset is not None:
            return await asyncio.to_thread(self._dataset.check)
        self._check_target()
        parent = self._existing_parent()
        if not os.access(parent, os.W_OK | os.X_OK):
            raise self._unwritable(parent)

    async def open(self) -> None:
        await asyncio.to_thread(self._disk_errors, self._open_sync)

    def _open_sync(self) -> None:
        with self._io:
            self._reset()
        if self._dataset is not None:
            self._dataset.prepare()
        else:
            self._open_local()
        self._opened = True

    def _open_local(self) -> None:
        self._check_target()
        recover(self.target)
        if self.settings.mode == "append":
            self._roll_forward_journals()
        try:
            self.staging.parent.mkdir(parents=True, exist_ok=True)
            sweep_dead(self.target)  # leftovers of runs that were killed
            sweep_abandoned_parts(self.target, PARTS_MARK, ABANDONED_PARTS_SECONDS)
            self._lock.acquire()
            self.staging.mkdir()
        except PermissionError as exc:
            raise self._unwritable(self._existing_parent()) from exc
        except OSError as exc:
            raise StoreError(f"cannot create {self.staging}: {exc.strerror}") from exc

    async def write(self, df: pl.DataFrame) -> None:
        """Stage a batch. Used on its own, outside a flow (no `open()` first), a write is one
        whole commit: `await store.write(df)` publishes `df` atomically (per `mode`)."""
        if not self._opened:
            await self.open()
            try:
                await self._stage(df)
                await self.commit()
            except BaseException:
                await self.abort()
                raise
            return
        await self._stage(df)

    async def _stage(self, df: pl.DataFrame) -> None:
        table = df.to_arrow(compat_level=self.arrow_compat())
        await asyncio.to_thread(self._disk_errors, self._write_sync, table, self.run_id)

    def _write_sync(self, table: pa.Table, run_id: str | None = None) -> None:
        with self._io:
            if self._aborted or (run_id is not None and run_id != self.run_id):
                return  # a write of an attempt that was given up: nothing may land
            self._write_rows(table)

    def _write_rows(self, table: pa.Table) -> None:
        limit = self.settings.max_rows_per_file
        while table.num_rows:
            if self._writer is None or self._rows_in_file >= limit:
                self._start_file(table.schema)
            take = min(limit - self._rows_in_file, table.num_rows)
            chunk = table.slice(0, take)
            try:
                self.write_chunk(self._writer, chunk)
            except (pa.ArrowException, ValueError) as exc:
                raise StoreError(
                    f"cannot write a batch to {self.target}: {exc}",
                    hint="every batch of a flow must have the same columns and types",
                ) from exc
            self._rows_in_file += take
            table = table.slice(take)

    def _start_file(self, schema: pa.Schema) -> None:
        self._drop_writer()
        name = f"part-{self.run_id}-{self._file_index:05d}{self.suffix}"
        self._file_index += 1
        if self._dataset is not None:
            url, self._stream = self._dataset.new_file(name)
            self._writer = self.open_writer(self._stream, schema)
            self._files.append(url)  # type: ignore[arg-type]
        else:
            path = self.staging / name
            self._writer = self.open_writer(path, schema)
            self._files.append(path)
        self._rows_in_file = 0

    def _close_writer(self) -> None:
        with self._io:
            self._drop_writer()

    def _drop_writer(self) -> None:
        """Close the current file (the caller holds the writer lock)."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()
        if self._stream is not None:
            stream, self._stream = self._stream, None
            stream.close()  # completes the multipart upload: the object now exists

    async def staged_rows(self) -> int | None:
        return await asyncio.to_thread(self._disk_errors, self._staged_rows_sync)

    def _staged_rows_sync(self) -> int | None:
        self._close_writer()
        if self._dataset is not None:
            counts = [self.count_rows(self._dataset.open_staged(f)) for f in self._files]  # type: ignore[arg-type]
            return None if None in counts else sum(counts)  # type: ignore[arg-type]
        counts = [self.count_rows(f) for f in self._files]
        return None if None in counts else sum(counts)  # type: ignore[arg-type]

    async def commit(self) -> None:
        await asyncio.to_thread(self._disk_errors, self._commit_sync)

    def _commit_sync(self) -> None:
        self._close_writer()
        if self._dataset is not None:
            return self._dataset.commit(self.settings.mode, self._states)
        for f in self._files:  # data must be on disk before it becomes visible
            _fsync(f)
        if self.settings.mode == "replace":
            for flow, state in self._states.items():
                _write_json(_state_file(self.staging, flow), state)
            old = replace_dir(self.staging, self.target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        else:
            self._append_files()
        _fsync(self.target.parent)
        self._lock.release()
        self._opened = False

    def _append_files(self) -> None:
        journal_dir = self.target / META_DIR
        journal_dir.mkdir(parents=True, exist_ok=True)
        moves = [(str(f), str(self.target / f.name)) for f in self._files]
        journal = journal_dir / f"commit-{self.run_id}.json"
        plan = {"staging": str(self.staging), "moves": moves, "states": self._states}
        # Once the journal exists the commit completes, even after a crash: the data and the
        # state it carries become visible together.
        _write_json(journal, plan)
        _apply_journal(journal)

    def _roll_forward_journals(self) -> None:
        journal_dir = self.target / META_DIR
        if journal_dir.is_dir():
            for journal in sorted(journal_dir.glob("commit-*.json")):
                _apply_journal(journal)

    async def read_state(self, flow: str) -> dict[str, Any] | None:
        if self._dataset is not None:
            return await asyncio.to_thread(self._dataset.read_state, flow)
        path = _state_file(self.target, flow)
        return json.loads(path.read_text()) if path.exists() else None

    def stage_state(self, flow: str, state: dict[str, Any]) -> None:
        self._states[flow] = state

    async def reset_state(self, flow: str) -> bool:
        if self._dataset is not None:
            return await asyncio.to_thread(self._dataset.reset_state, flow)
        path = _state_file(self.target, flow)
        existed = path.exists()
        path.unlink(missing_ok=True)
        return existed

    async def abort(self) -> None:
        await asyncio.to_thread(self._abort_sync)

    def _abort_sync(self) -> None:
        with self._io:
            self._aborted = True
            self._abort_staging()

    def _abort_staging(self) -> None:
        with contextlib.suppress(Exception):
            self._close_writer()
        if self._dataset is not None:
            self._dataset.abort()
            return
        journal = self.target / META_DIR / f"commit-{self.run_id}.json"
        if journal.exists():
            # The commit point was passed: finishing it is the only consistent outcome. If
            # that fails too, the next run rolls the journal forward from the staged files.
            with contextlib.suppress(Exception):
                _apply_journal(journal)
        else:
            shutil.rmtree(self.staging, ignore_errors=True)
        self._lock.release()
        self._opened = False

    # -- parts of a partitioned flow (MultiPartStore) -------------------------------------
    @classmethod
    def parts_problem(cls, settings: Any) -> str | None:
        if is_object_url(settings.path):
            return "takes parts on a local or shared volume only, not yet on object storage"
        return None

    def parts_root(self, part: str) -> Path:
        """Where every part of the flow run `part` belongs to stages (a shared volume when
        parts run on several machines)."""
        run = part.split(".", 1)[0]
        return self.target.with_name(f".{self.target.name}{PARTS_MARK}{run}")

    async def open_part(self, part: str) -> None:
        await asyncio.to_thread(self._open_part_sync, part)

    def _open_part_sync(self, part: str) -> None:
        self._reset()
        self._check_target()
        # Each attempt of a part stages in a folder of its own: a re-run part (its worker was
        # killed) never mixes with what the dead attempt left, which the commit ignores.
        self.staging = self.parts_root(part) / f"{part.split('.', 1)[-1]}-{self.run_id}"
        try:
            self.staging.mkdir(parents=True)
        except PermissionError as exc:
            raise self._unwritable(self._existing_parent()) from exc
        except OSError as exc:
            raise StoreError(f"cannot create {self.staging}: {exc.strerror}") from exc
        self._opened = True

    async def seal_part(self, part: str) -> dict[str, Any]:
        return await asyncio.to_thread(self._seal_part_sync, part)

    def _seal_part_sync(self, part: str) -> dict[str, Any]:
        self._close_writer()
        for f in self._files:
            _fsync(f)
        _fsync(self.staging)
        rows = self._staged_rows_sync()
        return {"part": part, "files": [str(f) for f in self._files], "rows": rows}

    async def parts_rows(self, parts: list[dict[str, Any]]) -> int | None:
        return await asyncio.to_thread(self._parts_rows_sync, parts)

    def _parts_rows_sync(self, parts: list[dict[str, Any]]) -> int | None:
        counts = [self.count_rows(Path(f)) for p in parts for f in p.get("files", [])]
        return None if None in counts else sum(counts)  # type: ignore[arg-type]

    async def commit_parts(self, parts: list[dict[str, Any]]) -> None:
        await asyncio.to_thread(self._commit_parts_sync, parts)

    def _commit_parts_sync(self, parts: list[dict[str, Any]]) -> None:
        states = self._states  # given to stage_state before this commit
        self._open_sync()  # recover, roll journals forward, sweep, a locked staging folder
        self._states = states
        try:
            for description in parts:
                for name in description.get("files", []):
                    source = Path(name)
                    if not source.is_file():
                        raise StoreError(
                            f"part {description['part']} of {self.target}: staged file "
                            f"{source} is missing; nothing was committed",
                            hint="parts must stage where the committing process can read "
                            "them (a shared volume); run the flow again",
                        )
                    # A link, not a move: the parts stay whole until the publish is done.
                    os.link(source, self.staging / source.name)
                    self._files.append(self.staging / source.name)
            _fsync(self.staging)
            self._commit_sync()
        except BaseException:
            self._abort_sync()
            raise

    async def abort_parts(self, parts: list[dict[str, Any]]) -> None:
        await asyncio.to_thread(self._remove_parts, parts)

    def _remove_parts(self, parts: list[dict[str, Any]]) -> None:
        for root in {self.parts_root(p["part"]) for p in parts}:
            shutil.rmtree(root, ignore_errors=True)

    # -- helpers ------------------------------------------------------------------------
    def _disk_errors(self, action: Callable[..., T], *args: Any) -> T:
        """Run `action`; a full disk (or quota, or read-only file system) is an error that
        names the store and the path, whichever writer or file call ran into it."""
        try:
            return action(*args)
        except OSError as exc:
            problem = _DISK_ERRNOS.get(exc.errno or _errno_in(exc))
            if problem is None:
                raise
            raise StoreError(
                f"store '{self.name}': {problem} while writing {self.target} (staging in "
                f"{self.staging}); nothing was published",
                hint="free space on that file system (or raise the quota), then run again",
            ) from exc

    def _check_target(self) -> None:
        if self.target.exists() and not self.target.is_dir():
            raise StoreError(
                f"{self.target} is a file, but a {self.type_name} store writes a folder",
                hint="point `path` at a folder (it is created if missing)",
            )

    def _existing_parent(self) -> Path:
        parent = self.target.parent
        while not parent.exists():
            parent = parent.parent
        return parent

    def _unwritable(self, where: Path) -> StoreError:
        return StoreError(
            f"cannot write to {self.target}: {where} is not writable",
            hint="choose a writable path or fix the folder's permissions",
        )


def _errno_in(exc: OSError) -> int:
    """pyarrow raises a plain OSError whose text names the cause ("[Errno 28] ...")."""
    found = re.search(r"\[Errno (\d+)\]", str(exc))
    return int(found.group(1)) if found else 0


def _apply_journal(journal: Path) -> None:
    """Finish the renames a journal lists and write its states (idempotent), then drop it."""
    plan = json.loads(journal.read_text())
    for src, dst in plan["moves"]:
        if os.path.exists(src):
            os.replace(src, dst)
    dataset = journal.parent.parent
    for flow, state in plan.get("states", {}).items():
        _write_json(_state_file(dataset, flow), state)
    shutil.rmtree(plan["staging"], ignore_errors=True)
    journal.unlink()


def _state_file(dataset: Path, flow: str) -> Path:
    return dataset / META_DIR / "state" / f"{file_name(flow)}.json"


def _write_json(path: Path, value: Any) -> None:
    """Write atomically: a reader sees the old file or the new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, default=str))
    _fsync(tmp)
    os.replace(tmp, path)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
