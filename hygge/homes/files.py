"""What file homes share: path expansion, projection, batching and errors naming the file."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import polars as pl
import pyarrow as pa

from hygge import partitions
from hygge.batching import iterate_in_thread
from hygge.contract import (
    Home,
    HomeSettings,
    IncrementalHome,
    PathSetting,
    SplittableHome,
    default_path,
)
from hygge.errors import HomeError, HyggeError
from hygge.homes._paths import expand_paths
from hygge.secrets import mask_url
from hygge.storage import is_object_url

if TYPE_CHECKING:
    from hygge.homes.remote_files import RemoteFiles

R = TypeVar("R")
log = logging.getLogger("hygge.homes")  # -v: which files a home found, and how it reads them
SHOWN_FILES = 5  # -v names this many of the files a home matched


class FileHomeSettings(HomeSettings):
    path: PathSetting
    columns: list[str] | None = None
    # Object stores only: credentials and endpoints in delta-rs/object_store key names
    # (`aws_access_key_id`, `azure_storage_account_key`, ...); unset keys come from the
    # cloud's standard environment variables.
    storage_options: dict[str, str] | None = None


class FileHome(SplittableHome, IncrementalHome, Home[FileHomeSettings]):
    """A home over one file, every matching file in a folder, or a glob."""

    abstract = True
    suffixes: ClassVar[tuple[str, ...]]
    Settings: ClassVar[type[FileHomeSettings]] = FileHomeSettings

    _loaded: dict[str, list[int]] | None = None  # incremental: files already loaded
    _snapshot: dict[str, list[int]] | None = None
    _share: list[tuple[Path, list[int] | None]] | None = None  # a partition: files (row groups)

    _remote: RemoteFiles | None = None
    source_column: str | None = None  # set by a flow's shape: a column naming each row's file

    @classmethod
    def defaults(cls, name: str, values: Mapping[str, Any]) -> dict[str, Any]:
        return {"path": default_path(name)}

    def files(self) -> list[Path]:
        if is_object_url(self.settings.path):
            if self._remote is None:
                from hygge.homes.remote_files import RemoteFiles  # loads pyarrow.fs

                self._remote = RemoteFiles(self.settings.path, self.settings.storage_options)
            # Object URLs stand in for paths: every reader opens either (`source`).
            found: list[Path] = self._remote.expand(self.suffixes)  # type: ignore[assignment]
        else:
            found = expand_paths(self.settings.path, self.suffixes)
        if not self._listed:
            self._listed = True
            self._tell_files(found)
        return found

    _listed = False  # -v names the files once per home, however often they are listed

    def _tell_files(self, found: list[Path]) -> None:
        path = self.settings.path
        how = (
            "the glob"
            if set("*?[") & set(path)
            else "the file"
            if len(found) == 1 and str(found[0]).rstrip("/") == path.rstrip("/")
            else "the objects under"
            if self._remote is not None
            else "the folder"
        )
        names = ", ".join(mask_url(str(f)) for f in found[:SHOWN_FILES])
        more = f" and {len(found) - SHOWN_FILES} more" if len(found) > SHOWN_FILES else ""
        log.debug(
            "home '%s' (%s): %s %s matched %d file(s): %s%s",
            self.name,
            self.type_name,
            how,
            mask_url(path),
            len(found),
            names,
            more,
        )

    def reader(self, path: Path) -> str:
        """-v: how this home reads one file (the reader path it takes)."""
        return f"pyarrow's streaming {self.type_name} reader"

    def source(self, path: Path) -> Any:
        """What a reader opens: the local path, or a stream over the remote object."""
        if self._remote is not None and isinstance(path, str):
            return self._remote.open(path, random_access=self.random_access)
        return path

    # Parquet needs random access (footer, row groups); CSV and NDJSON read sequentially.
    random_access: ClassVar[bool] = False

    # -- incremental: only files not loaded before, by path, size and modification time ----

    def incremental_definition(self) -> dict[str, Any]:
        return {"type": self.type_name, "path": self.settings.path, "by": "path+size+mtime"}

    def resume(self, state: dict[str, Any] | None) -> None:
        self._loaded = dict((state or {}).get("files", {}))

    def checkpoint(self) -> dict[str, Any]:
        return {"files": {**(self._loaded or {}), **(self._snapshot or {})}}

    def _files_to_read(self) -> list[Path]:
        """Every file, or with `resume()` only new and changed ones (fixed at the start)."""
        files = self.files()
        if self._loaded is None:
            return files
        stamps = {str(f): self._stamp(f) for f in files}
        self._snapshot = {p: s for p, s in stamps.items() if self._loaded.get(p) != s}
        log.debug(
            "home '%s': incremental, %d of %d file(s) new or changed since the last run",
            self.name,
            len(self._snapshot),
            len(files),
        )
        return [f for f in files if str(f) in self._snapshot]

    def _stamp(self, path: Path) -> list[int]:
        if self._remote is not None and isinstance(path, str):
            return self._remote.stamp(path)
        return _stamp(path)

    def read_file(
        self, path: Path, row_groups: list[int] | None = None
    ) -> Iterator[pa.Table | pa.RecordBatch]:
        """Yield one file's data (or only `row_groups` of it) in batches of `batch_size` rows."""
        raise NotImplementedError

    def row_groups(self, path: Path) -> list[int] | None:
        """Rows per row group of one file, where the format has them (parquet), else None."""
        return None

    # -- partitions: groups of files, and row groups of big files ------------------------
    async def plan_parts(
        self, count: int | str | None, ranges: list[list[Any]] | None = None
    ) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._plan_parts_sync, count)

    def _plan_parts_sync(self, count: int | str | None) -> list[dict[str, Any]]:
        self.schema()  # conflicting or unreadable files fail here, before any part runs
        files = self._files_to_read()
        stamps = {str(f): self._stamp(f) for f in files}
        wanted = partitions.partition_count(count)
        # (file, row groups or None, weight): whole files, or, when there are fewer files than
        # partitions, the row groups of each file, so one big parquet file still splits.
        units: list[tuple[str, list[int] | None, int]] = []
        for f in files:
            groups = self.row_groups(f) if len(files) < wanted else None
            if groups and len(groups) > 1:
                units += [(str(f), [i], rows) for i, rows in enumerate(groups)]
            else:
                units.append((str(f), None, stamps[str(f)][0]))
        if not units:
            return [{"files": []}]
        plan = partitions.group_units([u[2] for u in units], wanted)
        return [
            {"files": [[units[i][0], units[i][1], stamps[units[i][0]]] for i in group]}
            for group in plan
        ]

    def part(self, descriptor: dict[str, Any]) -> FileHome:
        home = type(self)(self.name, self.settings)
        remote = is_object_url(self.settings.path)
        if remote:  # object keys stay text; the part opens them through its own client
            from hygge.homes.remote_files import RemoteFiles

            home._remote = RemoteFiles(self.settings.path, self.settings.storage_options)
        share: list[tuple[Path, list[int] | None]] = []
        for name, groups, _ in descriptor["files"]:
            path = name if remote else Path(name)
            if share and groups and share[-1][0] == path and share[-1][1]:
                share[-1][1].extend(groups)  # neighbouring row groups of one file: one read
            else:
                share.append((path, list(groups) if groups else None))
        home._share = share
        home._listed = True  # the plan named the files already (-v)
        home._loaded = dict(self._loaded or {}) if self._loaded is not None else None
        home._snapshot = {path: stamp for path, _g, stamp in descriptor["files"]}
        return home

    def merge_checkpoints(self, states: list[dict[str, Any]]) -> dict[str, Any]:
        files: dict[str, list[int]] = dict(self._loaded or {})
        for state in states:
            files.update(state.get("files", {}))
        return {"files": files}

    def opened(self, path: Path, open_reader: Callable[[], R]) -> R:
        """`open_reader()`, whose parse error (streaming readers parse a first block when
        they open) names the file's line."""
        try:
            return open_reader()
        except pa.ArrowInvalid as exc:
            raise self.parse_error(path, 0, exc) from exc

    def numbered(
        self, path: Path, open_reader: Callable[[], Iterable[pa.RecordBatch]]
    ) -> Iterator[pa.RecordBatch]:
        """The batches of one file, turning a parse error into one that names its line.

        Streaming readers report a bad row by its place in the current block, or not at all;
        counting the rows of the blocks before it gives the line of the file.
        """
        rows = 0
        iterator = iter(self.opened(path, open_reader))
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except pa.ArrowInvalid as exc:
                raise self.parse_error(path, rows, exc) from exc
            rows += batch.num_rows
            yield batch

    def parse_error(self, path: Path, rows_before: int, exc: pa.ArrowInvalid) -> HomeError:
        """The error for a bad row after `rows_before` good ones; formats name the line."""
        return HomeError(
            f"cannot read {path} as {self.type_name} after row {rows_before:,}: {exc}",
            hint=f"fix or remove that row (the file must be valid {self.type_name})",
        )

    def file_schema(self, path: Path) -> pa.Schema:
        """One file's schema, read without reading its data where the format allows."""
        raise NotImplementedError

    def file_rows(self, path: Path) -> int | None:
        """One file's rows, from its metadata or estimated from its size; None if unknown."""
        return None

    async def estimate_rows(self) -> int | None:
        return await asyncio.to_thread(self._estimate_rows_sync)

    def _estimate_rows_sync(self) -> int | None:
        try:
            files = self._files_to_read()
            counts = [self.file_rows(f) for f in files]
        except (OSError, pa.ArrowException, HomeError, ValueError):
            return None  # reading reports it properly; an estimate never fails a flow
        known = [c for c in counts if c is not None]
        return sum(known) if len(known) == len(counts) else None

    def _project(self, schema: pa.Schema, path: Path) -> pa.Schema:
        wanted = self.settings.columns
        if not wanted:
            return schema
        missing = [c for c in wanted if c not in schema.names]
        if missing:
            raise HomeError(
                f"{path}: column(s) {', '.join(missing)} not found",
                hint=f"available columns: {', '.join(schema.names)}",
            )
        return pa.schema([schema.field(c) for c in wanted])

    def _schema_of(self, path: Path) -> pa.Schema:
        return self._project(self.file_schema(path), path)

    def schema(self) -> pa.Schema:
        """The common schema of every input file; files that disagree are an error."""
        files = self.files()
        first = self._safe(files[0], partial(self._schema_of, files[0]))
        for other in files[1:]:
            schema = self._safe(other, partial(self._schema_of, other))
            if not _same_columns(schema, first):
                raise HomeError(
                    f"{other} does not have the same columns as {files[0]}: "
                    f"{_schema_difference(first, schema)}",
                    hint="give each schema its own flow, or convert the odd file",
                )
        return first

    async def check(self) -> None:
        self.schema()

    async def read_batches(self) -> AsyncIterator[pl.DataFrame]:
        self.schema()  # fail on conflicting or unreadable files before moving anything
        async for batch in iterate_in_thread(self._all_batches()):
            yield batch

    def _all_batches(self) -> Iterator[pl.DataFrame]:
        share = self._share
        if share is None:
            share = [(path, None) for path in self._files_to_read()]
        for path, groups in share:
            log.debug(
                "home '%s': reading %s%s through %s",
                self.name,
                mask_url(str(path)),
                f" (row groups {groups[0]}..{groups[-1]})" if groups else "",
                self.reader(path),
            )
            batches = self.read_file(path, groups) if groups else self.read_file(path)
            while True:
                batch = self._safe(path, partial(next, batches, None))
                if batch is None:
                    break
                if batch.num_rows:
                    # A record batch gives a frame; untyped pyarrow hides that from mypy.
                    df: pl.DataFrame = pl.from_arrow(batch)  # type: ignore[assignment]
                    if self.source_column:  # shape's `file` audit column (hygge/shape.py)
                        df = df.with_columns(pl.lit(str(path)).alias(self.source_column))
                    yield df

    def _safe(self, path: Path, action: Callable[[], R]) -> R:
        """Run `action`, turning a reader's error into a HomeError that names the file."""
        try:
            return action()
        except HomeError:
            raise
        except PermissionError as exc:
            raise HomeError(
                f"cannot read {path}: permission denied",
                hint="give the user running hygge read access",
            ) from exc
        except FileNotFoundError as exc:
            raise HomeError(f"input not found: {path}") from exc
        except HyggeError as exc:  # a StorageError from an object store
            raise HomeError(exc.message, hint=exc.hint, transient=exc.transient) from exc
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise HomeError(
                f"cannot read {path} as {self.type_name}: {exc}",
                hint=f"check that the file is a valid, complete {self.type_name} file",
            ) from exc


SAMPLE_BYTES = 1 << 20


def rows_from_size(path: Path, header_lines: int = 0) -> int | None:
    """A line-per-row file's rows, estimated from its size and the lines in its first MB
    (exact for files up to that size). Compressed files are not estimated, nor objects in an
    object store (their first MB would be one more request per file)."""
    if not isinstance(path, Path) or path.name.endswith((".gz", ".zst", ".bz2", ".xz")):
        return None
    size = path.stat().st_size
    with path.open("rb") as f:
        sample = f.read(SAMPLE_BYTES)
    lines = sample.count(b"\n") + (1 if sample and not sample.endswith(b"\n") else 0)
    if len(sample) == size:
        return max(lines - header_lines, 0)
    if lines <= header_lines:
        return None
    return max(round(size * lines / len(sample)) - header_lines, 0)


def _stamp(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _same_columns(a: pa.Schema, b: pa.Schema) -> bool:
    """Same names, order and types. Nullability does not count: a required column and an
    optional one hold the same data, and batches travel as polars frames, where every
    column may hold nulls."""
    return a.names == b.names and all(x.type == y.type for x, y in zip(a, b, strict=True))


def _schema_difference(a: pa.Schema, b: pa.Schema) -> str:
    parts = []
    for name in a.names:
        if name not in b.names:
            parts.append(f"'{name}' missing")
        elif a.field(name).type != b.field(name).type:
            parts.append(f"'{name}' is {b.field(name).type}, not {a.field(name).type}")
    parts += [f"extra column '{n}'" for n in b.names if n not in a.names]
    if not parts and a.names != b.names:
        parts.append(
            f"the columns are in another order ({', '.join(b.names)}, not {', '.join(a.names)})"
        )
    return ", ".join(parts) or "the schemas differ"
