"""Open Mirroring: write a Fabric mirrored database's landing zone, which Fabric replicates
into Delta tables continuously. The format is in `_landing.py`; docs/fabric.md for users.

Modes:
- `replace`: Microsoft's documented reset (the table folder is deleted and created again;
  Fabric drops the mirrored table and loads it anew), then the rows as an initial load
  (files without `__rowMarker__`, which Fabric reads as inserts).
- `append`: every row an upsert (4); `soft_delete: COLUMN` turns rows whose column is true
  (or, for a non-boolean column, set) into deletes (2). Incremental flows use this mode.
- `snapshot`: every run reads the whole table: upserts, then a delete marker for every key
  the last run saw and this one did not. The keys a run saw are kept with the data
  (`<table>/_hygge/keys.parquet`); comparing them runs bucket by bucket, so memory follows
  the bucket size, not the table's.

A run stages its files under the landing zone's `_hygge/` area, then commits through a
journal that names every file's final number (next after the highest in the table folder):
renamed one by one, each complete, the state and keys after them. A killed run is finished
by the next one from the journal, so the sequence never has a gap, a number twice or half a
file. Two runs of one flow are serialised by the run lock; two flows on one table are
refused by `validate`.

Over 400 lines: one store's lifecycle (checks, stage, commit, parts, state, abort) and its settings
read best together; the landing-zone format and journal (`_landing.py`) and the snapshot's
delete detection (`_mirror_deletes.py`) are their own modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pydantic import BeforeValidator, ConfigDict, Field, field_validator

from hygge.contract import (
    MultiPartStore,
    PathSetting,
    StatefulStore,
    Store,
    StoreSettings,
    default_path,
    parts_run,
)
from hygge.errors import ConfigError, HyggeError, StoreError
from hygge.locks import NoLock, RunLock, file_name
from hygge.storage.location import is_object_url
from hygge.storage.onelake import is_onelake, onelake_url
from hygge.stores import _landing as lz
from hygge.stores import _mirror_deletes as deletes
from hygge.stores.files import Lane, WriterPool
from hygge.stores.parquet import ArrowOutput, declared_schema, dictionary_columns

log = logging.getLogger("hygge.stores.open_mirroring")  # -v: staging, journal, data files
KEYS_FILE = "keys.parquet"
KEYS_PER_BUCKET = 2_000_000  # keys compared at once in a snapshot's delete detection
# What the replicator supports: uncompressed, Snappy, GZIP or ZSTD.
Compression = Literal["zstd", "snappy", "gzip", "none"]


def _landing_zone_path(value: Any) -> Any:
    return onelake_url(value) if isinstance(value, str) else value


# onelake://workspace/item/... becomes the abfss:// form before the path is resolved
LandingZonePath = Annotated[PathSetting, BeforeValidator(_landing_zone_path)]


class OpenMirroringSettings(StoreSettings):
    mode: Literal["replace", "append", "snapshot"] = "replace"  # type: ignore[assignment]  # widens the base's modes
    path: LandingZonePath = Field(description="The landing zone (…/Files/LandingZone).")
    table: str | None = Field(None, description="The table folder (default: the store's name).")
    db_schema: str | None = Field(
        None, alias="schema", description="Put the table in a `<schema>.schema` folder."
    )
    key: list[str] | None = Field(
        None,
        validate_default=True,  # a missing key is refused where flows.yml is read
        description="The key columns: `keyColumns` of _metadata.json, never changed.",
    )
    soft_delete: str | None = Field(
        None, description="A column whose true (or non-null) value marks a deleted row."
    )
    compression: Compression = "snappy"
    max_rows_per_file: int = Field(1_000_000, gt=0, description="Start a new file after this.")
    writers: int = Field(
        2,
        ge=1,
        le=16,
        description="Files written at once by `replace` and `snapshot` (as for a parquet "
        "dataset); `append` writes one file at a time, keeping the rows' order.",
    )
    partner_name: str = Field("hygge", description="`partnerName` of _partnerEvents.json.")
    source_type: str | None = Field(None, description="`sourceType` of _partnerEvents.json.")
    storage_options: dict[str, str] | None = None

    model_config = ConfigDict(populate_by_name=True)

    @field_validator("key", mode="before")
    @classmethod
    def _one_key(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("key")
    @classmethod
    def _key_given(cls, value: list[str] | None) -> list[str] | None:
        if not value:
            raise ValueError(
                "open_mirroring needs `key`: the column(s) that identify a row "
                "(keyColumns of _metadata.json), e.g. key: [id]"
            )
        if len(set(value)) != len(value):
            raise ValueError(f"`key` names a column twice: {value}")
        return value

    @field_validator("table", "db_schema")
    @classmethod
    def _folder(cls, value: str | None, info: Any) -> str | None:
        if value is None or "{entity}" in value:
            return value
        what = "schema" if info.field_name == "db_schema" else "table"
        parts = [value] if what == "schema" else value.split(".", 1)
        for part in parts:
            problem = lz.folder_problem(part, what)
            if problem:
                raise ValueError(f"{problem}; give a plain folder name")
        return value


def _key_required(settings: OpenMirroringSettings) -> list[str]:
    if not settings.key:
        raise ConfigError(
            "open_mirroring needs `key`: the column(s) that identify a row (keyColumns of "
            "_metadata.json)",
            key="store.key",
            hint="e.g. key: [id]",
        )
    return settings.key


class OpenMirroringStore(MultiPartStore, StatefulStore, Store[OpenMirroringSettings]):
    """One table of a Fabric mirrored database's landing zone."""

    type_name = "open_mirroring"
    Settings: ClassVar[type[OpenMirroringSettings]] = OpenMirroringSettings
    settings: OpenMirroringSettings
    shared_modes: ClassVar[tuple[str, ...]] = ()  # one flow per table
    # an incremental flow cannot snapshot: refused by `validate` (config_checks)
    whole_table_modes: ClassVar[tuple[str, ...]] = ("snapshot",)

    @classmethod
    def defaults(cls, name: str, values: Mapping[str, Any]) -> dict[str, Any]:
        return {"path": default_path(name)}

    def __init__(self, name: str, settings: Any = None, **values: Any) -> None:
        super().__init__(name, settings, **values)
        s = self.settings
        self.key = _key_required(s)
        table, schema = s.table or name, s.db_schema
        if schema is None and "." in table:  # an entity "dbo.orders": dbo.schema/orders
            schema, table = table.split(".", 1)
        for part, what in ((schema, "schema"), (table, "table")):
            problem = part is not None and lz.folder_problem(part, what)
            if problem:
                raise ConfigError(
                    f"store '{name}': {problem}",
                    key="store.table",
                    hint="give a plain folder name (letters, digits, '-', '_', spaces)",
                )
        self.table = f"{schema}.schema/{table}" if schema else table
        self.staging_root = f"{lz.HIDDEN}/{self.table}"
        self.journal = f"{self.staging_root}/commit.json"
        self._tree: lz.Tree | None = None
        self._io = threading.RLock()
        self._naming = threading.Lock()  # lanes open files concurrently: one list of files
        self._keys_lock = threading.Lock()  # and write one keys file
        self._pool = WriterPool(1)
        self._reset()

    def _reset(self) -> None:
        self._pool.wait_idle()  # a write of the attempt before finishes first
        self.run_id = uuid.uuid4().hex[:12]
        self.staging = f"{self.staging_root}/staging-{self.run_id}"
        self._pool = WriterPool(self._writers, self.settings.max_rows_per_file)
        self._dictionary: list[str] | bool = True
        self._arrow = ArrowOutput()  # as a parquet dataset: polars' string views, no copy
        self._keys_writer: pq.ParquetWriter | None = None
        self._keys_stream: Any = None
        self._files: list[str] = []
        self._schema: pa.Schema | None = None
        self._states: dict[str, dict[str, Any]] = {}
        self._checked_columns = False
        self._upserts: pa.Array | None = None
        self._parts_run: str | None = None
        self._aborted = False
        self._opened = False

    # -- where ----------------------------------------------------------------------------
    @property
    def _full_read(self) -> bool:
        """Replace and snapshot runs read the whole table: their keys are recorded, so the
        next snapshot run can tell which keys disappeared."""
        return self.settings.mode in ("replace", "snapshot")

    @property
    def _writers(self) -> int:
        """Lanes (`WriterPool`): rows of two lanes interleave across files, which is the
        same table only when every key comes once. A replace or snapshot reads the whole
        table, one row per key; an append may carry a key twice (a change log, a row
        updated twice), whose upserts must land in read order: one lane."""
        return 1 if self.settings.mode == "append" else self.settings.writers

    @property
    def tree(self) -> lz.Tree:
        if self._tree is None:
            self._tree = _tree(self.settings.path, self.settings.storage_options)
        return self._tree

    def destination(self) -> str | None:
        base = super().destination()
        return f"{base}/{self.table}" if base else None

    def describe(self) -> str:
        return f"open_mirroring:{self.tree.where(self.table)}"

    def lock(self, flow: str) -> RunLock:
        """On object storage (OneLake included) the lock object sits inside the landing zone,
        under `_hygge/` (`_hygge/.orders.hygge-lock.<flow>`): partners may write only there
        on OneLake, and the replicator ignores names starting with `_`. On a local disk it is
        the file beside the landing zone, as for every store."""
        path = self.settings.path
        if _not_a_landing_zone(path):
            # check() refuses it, clearly, before anything is written: no lock to take there
            return NoLock(flow, self.describe())
        if is_object_url(path):
            return self.lock_at(flow, f"{path.rstrip('/')}/{lz.HIDDEN}/{self.table}")
        return super().lock(flow)

    # -- checks ---------------------------------------------------------------------------
    async def check(self) -> None:
        await asyncio.to_thread(self._check_sync)

    def _check_sync(self) -> None:
        tree, path = self.tree, self.settings.path
        if _not_a_landing_zone(path):
            raise StoreError(
                f"{tree.where()} is not a mirrored database's landing zone",
                hint="use the Landing zone URL from the mirrored database's Home page: "
                "abfss://<workspace>@onelake.dfs.fabric.microsoft.com/<database>/Files/"
                "LandingZone",
            )
        if tree.storage is not None:
            try:
                tree.storage.check_bucket()
            except HyggeError as exc:
                if not is_onelake(path):
                    raise
                raise StoreError(
                    f"cannot reach the landing zone: {exc.message}",
                    hint="sign in to Microsoft Entra: az login, a managed identity, or a "
                    "service principal (AZURE_CLIENT_ID, AZURE_TENANT_ID, "
                    "AZURE_CLIENT_SECRET) with access to the workspace",
                    transient=exc.transient,
                ) from exc
        lz.check_landing_zone(tree)
        self._check_table()

    def _check_table(self) -> None:
        tree = self.tree
        kind = tree.kind(self.table)
        if kind == pafs.FileType.File:
            raise StoreError(f"{tree.where(self.table)} is a file, not a table folder")
        metadata = tree.read_json(self.table, lz.METADATA)
        if metadata is None:
            return
        keys = metadata.get("keyColumns", metadata.get("KeyColumns"))
        if keys is not None and list(keys) != self.key:
            raise StoreError(
                f"store '{self.name}': the key of {tree.where(self.table)} is {list(keys)} "
                f"(its _metadata.json), but `key` says {self.key}; a mirrored table's key "
                "columns cannot change",
                hint=f"set key: {list(keys)}, or drop the table to change it: delete the "
                "folder (Fabric drops the mirrored table) and run again",
            )

    async def check_home(self, home: Any) -> None:
        """The key (and soft-delete) columns exist in what the home reads (for validate)."""
        columns = await asyncio.to_thread(_home_columns, home)
        if columns is not None:
            self._check_columns(columns, f"home '{home.name}'")

    def _check_columns(self, columns: list[str], where: str) -> None:
        wanted = [*self.key, *([self.settings.soft_delete] if self.settings.soft_delete else [])]
        missing = [c for c in wanted if c not in columns]
        if missing:
            what = "key" if missing[0] in self.key else "soft_delete"
            raise StoreError(
                f"store '{self.name}': {what} column(s) {', '.join(missing)} not in {where}",
                hint=f"its columns: {', '.join(columns)}",
            )
        if lz.MARKER in columns:
            raise StoreError(
                f"store '{self.name}': {where} has a column {lz.MARKER}, which the landing "
                "zone reserves for the row marker",
                hint="rename or leave out that column",
            )

    # -- lifecycle ------------------------------------------------------------------------
    async def open(self) -> None:
        await asyncio.to_thread(self._open_sync)

    def _open_sync(self) -> None:
        with self._io:
            self._reset()
        self._check_sync()
        tree = self.tree
        lz.apply_journal(tree, self.journal)  # a killed run's commit is finished first
        for name, is_dir in tree.listing(self.staging_root):
            if is_dir and name.startswith("staging-"):  # killed runs' leftovers
                tree.delete_dir(self.staging_root, name)
        tree.mkdir(self.staging)
        self._opened = True
        log.debug(
            "store '%s' (open_mirroring): table folder %s, staging in %s (mode %s), "
            "published through the journal %s",
            self.name,
            tree.where(self.table),
            tree.where(self.staging),
            self.settings.mode,
            tree.where(self.journal),
        )

    async def write(self, df: pl.DataFrame) -> None:
        """Stage a batch. Used outside a flow (no `open()` first), one write is one commit."""
        if not self._opened:
            return await self.write_alone(self.write, df)
        if not self._checked_columns:
            self._check_columns(df.columns, "the data")
            self._checked_columns = True
        # The conversion runs in the lane's thread: the event loop meanwhile fetches the
        # next batch, and the other lane encodes (a landing zone costs no more than a
        # parquet dataset, issue 22).
        run_id = self.run_id
        await self._pool.submit(df.height, lambda lane: self._write_frame(lane, df, run_id))

    def _write_frame(self, lane: Lane, df: pl.DataFrame, run_id: str) -> None:
        table = self._with_marker(df).to_arrow(compat_level=self._arrow.compat(df))
        keys = table.select(self.key) if self._full_read else None  # no copy: same buffers
        if keys is not None and not (declared := declared_schema(keys.schema)).equals(keys.schema):
            keys = keys.cast(declared)  # string keys: compared with earlier runs' large ones
        self._write_sync(lane, self._with_row_marker(table), keys, run_id)

    def _with_marker(self, df: pl.DataFrame) -> pl.DataFrame:
        """The rows with a soft-delete's `__rowMarker__` as the last column (computed by
        polars: it depends on each row); other rows are marked by `_with_row_marker`."""
        column = self.settings.soft_delete
        if not column:
            return df
        written = lz.INSERT if self.settings.mode == "replace" else lz.UPSERT
        deleted = (
            pl.col(column).fill_null(False)
            if df.schema[column] == pl.Boolean
            else pl.col(column).is_not_null()
        )
        marker = pl.when(deleted).then(pl.lit(lz.DELETE, dtype=pl.Int32))
        return df.with_columns(marker.otherwise(pl.lit(written, dtype=pl.Int32)).alias(lz.MARKER))

    def _with_row_marker(self, table: pa.Table) -> pa.Table:
        """`__rowMarker__` 4 (upsert) last on every row of an append or snapshot; a replace
        is an initial load, whose files carry no marker (Fabric reads them as inserts)."""
        if self.settings.soft_delete or self.settings.mode == "replace":
            return table
        n, upserts = table.num_rows, self._upserts
        if upserts is None or len(upserts) < n:  # one array, sliced for every batch
            upserts = self._upserts = pa.repeat(pa.scalar(lz.UPSERT, pa.int32()), max(n, 1))
        return table.append_column(pa.field(lz.MARKER, pa.int32()), upserts.slice(0, n))

    def _write_sync(self, lane: Lane, table: pa.Table, keys: pa.Table | None, run_id: str) -> None:
        with lane.lock:
            if self._aborted or run_id != self.run_id:
                return  # a write of an attempt that was given up: nothing may land
            with self._naming:  # every file of the run: the first batch's schema
                if self._schema is None:
                    self._schema = table.schema
                    self._arrow.judge(table)
                    # as a parquet dataset: a dictionary where values repeat
                    self._dictionary = dictionary_columns(table)
            limit = self.settings.max_rows_per_file
            while table.num_rows:
                if lane.writer is None or lane.rows >= limit:
                    self._start_file(lane)
                take = min(limit - lane.rows, table.num_rows)
                try:
                    lane.writer.write_table(self._arrow.prepare(table.slice(0, take)))
                except (pa.ArrowException, ValueError) as exc:
                    raise StoreError(
                        f"cannot write a batch to {self.describe()}: {exc}",
                        hint="every batch of a flow must have the same columns and types",
                    ) from exc
                lane.rows += take
                table = table.slice(take)
            if keys is not None and keys.num_rows:
                with self._keys_lock:
                    if self._keys_writer is None:
                        self._keys_stream = self.tree.open_output(self.staging, KEYS_FILE)
                        self._keys_writer = keys_writer(self._keys_stream, keys.schema)
                    self._keys_writer.write_table(keys)

    def _start_file(self, lane: Lane) -> None:
        """A new staged file for the lane, its place in the run's list of files taken as it
        opens (the journal numbers them in that order)."""
        lane.close(_close_stream)
        with self._naming:
            name = f"{self.staging}/part-{len(self._files):06d}.parquet"
            self._files.append(name)
        lane.sink = self.tree.open_output(name)
        compression = self.settings.compression
        lane.writer = self._arrow.open_writer(
            lane.sink,
            self._schema,
            compression=None if compression == "none" else compression,
            use_dictionary=self._dictionary,
        )
        lane.rows = 0

    def _close_all(self) -> None:
        """Close every lane's file (waiting for a write still running in a thread) and the
        keys file."""
        with self._io:
            for lane in self._pool.lanes:
                with lane.lock:
                    lane.close(_close_stream)
            with self._keys_lock:
                if self._keys_writer is not None:
                    writer, self._keys_writer = self._keys_writer, None
                    writer.close()
                if self._keys_stream is not None:
                    stream, self._keys_stream = self._keys_stream, None
                    stream.close()

    async def staged_rows(self) -> int | None:
        await self._pool.settle_all()
        return await asyncio.to_thread(self._staged_rows_sync)

    def _staged_rows_sync(self) -> int:
        self._close_all()
        return sum(self._file_rows(f) for f in self._files)

    def _file_rows(self, rel: str) -> int:
        with self.tree.fs.open_input_file(self.tree.path(rel)) as f:
            return int(pq.ParquetFile(f).metadata.num_rows)

    async def commit(self) -> None:
        await self._pool.settle_all()
        await asyncio.to_thread(self._commit_sync)

    def _commit_sync(self) -> None:
        self._close_all()
        tree, s = self.tree, self.settings
        files = list(self._files)
        hidden = f"{self.table}/{lz.HIDDEN}"
        replace: list[list[str]] = []
        delete: list[str] = []
        if s.mode == "append":  # keys seen by an append are not the whole table: forget them
            delete.append(f"{hidden}/{KEYS_FILE}")
        else:
            deletes = self._stage_deletes() if s.mode == "snapshot" else None
            if deletes:
                files.append(deletes)
            staged_keys = f"{self.staging}/{KEYS_FILE}"
            if not tree.exists(staged_keys):  # no rows this run: no key is left
                self._write_keys(pa.table({}), staged_keys)
            replace.append([staged_keys, f"{hidden}/{KEYS_FILE}"])
        for name in files:
            tree.sync(name)
        reset = s.mode == "replace"
        first = 1 if reset else lz.last_number(tree, self.table) + 1
        plan = {
            "run": self.run_id,
            "table": self.table,
            "staging": self.staging,
            "reset": reset,
            "metadata": {"keyColumns": self.key},
            "moves": [
                [src, f"{self.table}/{lz.data_file_name(first + i)}"] for i, src in enumerate(files)
            ],
            "json": {
                **{
                    f"{hidden}/state/{file_name(flow)}.json": state
                    for flow, state in self._states.items()
                },
                **(
                    {f"{hidden}/parts-run.json": {"run": self._parts_run}}
                    if self._parts_run
                    else {}
                ),
            },
            "replace": replace,
            "delete": delete,
        }
        if tree.kind(lz.PARTNER_EVENTS) == pafs.FileType.NotFound:
            tree.write_json(self._partner_events(), lz.PARTNER_EVENTS)
        # Once the journal exists the commit completes, even after a crash: the next run
        # carries it out before anything else.
        tree.write_json(plan, self.journal)
        log.debug(
            "store '%s': journal written (the commit point): %d data file(s) as %s..., "
            "%d state file(s)%s",
            self.name,
            len(files),
            lz.data_file_name(first),
            len(self._states),
            "; the table is reset (replace)" if reset else "",
        )
        lz.apply_journal(tree, self.journal)
        log.debug("store '%s': journal applied to %s", self.name, tree.where(self.table))
        self._opened = False

    def _partner_events(self) -> dict[str, Any]:
        s = self.settings
        return {
            "partnerName": s.partner_name,
            "sourceInfo": {"sourceType": s.source_type or "hygge", "sourceVersion": ""},
        }

    # -- deletes of a snapshot ------------------------------------------------------------
    def _stage_deletes(self) -> str | None:
        """A file of delete markers for the keys the last run saw and this one did not (its
        name), or None when no key disappeared."""
        target = f"{self.staging}/part-{len(self._files):06d}.parquet"
        found = deletes.stage(
            self.tree,
            previous=f"{self.table}/{lz.HIDDEN}/{KEYS_FILE}",
            current=f"{self.staging}/{KEYS_FILE}",
            key=self.key,
            schema=None if self._schema is None else declared_schema(self._schema),
            target=target,
            per_bucket=KEYS_PER_BUCKET,
        )
        return target if found else None

    def _write_keys(self, table: pa.Table, rel: str) -> None:
        with self.tree.open_output(rel) as out:
            pq.write_table(table, out)

    # -- parts of a partitioned flow (MultiPartStore) -------------------------------------
    # Each part stages under `_hygge/<table>/parts-<flow run>/` (on object storage every
    # worker reaches it); the commit numbers every part's files in part order through the
    # same journal, and records the flow run, so a commit done again is a no-op.
    def _parts_root(self, part: str) -> str:
        return f"{self.staging_root}/parts-{part.split('.', 1)[0]}"

    async def open_part(self, part: str) -> None:
        await asyncio.to_thread(self._open_part_sync, part)

    def _open_part_sync(self, part: str) -> None:
        with self._io:
            self._reset()
        self._check_sync()
        self.staging = f"{self._parts_root(part)}/{part.split('.', 1)[-1]}-{self.run_id}"
        self.tree.mkdir(self.staging)
        self._opened = True

    async def seal_part(self, part: str) -> dict[str, Any]:
        await self._pool.settle_all()
        return await asyncio.to_thread(self._seal_part_sync, part)

    def _seal_part_sync(self, part: str) -> dict[str, Any]:
        rows = self._staged_rows_sync()
        keys = f"{self.staging}/{KEYS_FILE}"
        has_keys = self.tree.exists(keys)
        self._opened = False
        return {
            "part": part,
            "files": self._files,
            "keys": keys if has_keys else None,
            "rows": rows,
        }

    async def parts_rows(self, parts: list[dict[str, Any]]) -> int | None:
        return await asyncio.to_thread(
            lambda: sum(self._file_rows(f) for p in parts for f in p.get("files", []))
        )

    async def parts_committed(self, parts: list[dict[str, Any]]) -> bool:
        return await asyncio.to_thread(self._parts_committed_sync, parts)

    def _parts_committed_sync(self, parts: list[dict[str, Any]]) -> bool:
        """Is this flow run the one whose parts were committed last (`parts-run.json`)?"""
        done = self.tree.read_json(self.table, lz.HIDDEN, "parts-run.json")
        return isinstance(done, dict) and done.get("run") == (parts_run(parts) or self.run_id)

    async def commit_parts(self, parts: list[dict[str, Any]]) -> None:
        await asyncio.to_thread(self._commit_parts_sync, parts)

    def _commit_parts_sync(self, parts: list[dict[str, Any]]) -> None:
        states = self._states
        self._open_sync()  # checks, finishes a dead commit's journal, a fresh staging folder
        self._states = states
        if self._parts_committed_sync(parts):
            self._abort_sync()  # committed already: its end was not recorded
            return
        run = parts_run(parts) or self.run_id
        try:
            for description in parts:
                for name in description.get("files", []):
                    if not self.tree.exists(name):
                        raise StoreError(
                            f"part {description['part']} of {self.describe()}: staged file "
                            f"{name} is missing; nothing was committed",
                            hint="run the flow again",
                        )
                    self._files.append(name)
            if self._files:
                with self.tree.fs.open_input_file(self.tree.path(self._files[0])) as f:
                    self._schema = pq.ParquetFile(f).schema_arrow
            if self._full_read:
                self._gather_keys([p["keys"] for p in parts if p.get("keys")])
            self._parts_run = run
            self._commit_sync()
        except BaseException:
            self._abort_sync()
            raise

    def _gather_keys(self, files: list[str]) -> None:
        """The parts' keys as this run's one keys file."""
        writer: pq.ParquetWriter | None = None
        with contextlib.ExitStack() as stack:
            for name in files:
                source = pq.ParquetFile(
                    stack.enter_context(self.tree.fs.open_input_file(self.tree.path(name)))
                )
                for group in range(source.metadata.num_row_groups):
                    table = source.read_row_group(group)
                    if writer is None:
                        out = stack.enter_context(self.tree.open_output(self.staging, KEYS_FILE))
                        writer = stack.enter_context(keys_writer(out, table.schema))
                    writer.write_table(table)

    async def abort_parts(self, parts: list[dict[str, Any]]) -> None:
        def remove() -> None:
            for root in {self._parts_root(p["part"]) for p in parts}:
                self.tree.delete_dir(root)
            lz.tidy(self.tree, self.staging_root)

        await asyncio.to_thread(remove)

    # -- state (StatefulStore) ------------------------------------------------------------
    def _state_file(self, flow: str) -> tuple[str, ...]:
        return (self.table, lz.HIDDEN, "state", f"{file_name(flow)}.json")

    async def read_state(self, flow: str) -> dict[str, Any] | None:
        # Only incremental flows ask. flows.yml refuses `snapshot` for them at validation
        # (config_checks.check_incremental_mode); a flow built in Python is stopped here.
        if self.settings.mode in self.whole_table_modes:
            raise StoreError(
                f"store '{self.name}': an incremental flow cannot use mode: "
                f"{self.settings.mode} (it would delete every row it did not read)",
                hint="use mode: append, with soft_delete for deletes",
            )
        state = await asyncio.to_thread(self.tree.read_json, *self._state_file(flow))
        return state if isinstance(state, dict) else None

    def stage_state(self, flow: str, state: dict[str, Any]) -> None:
        self._states[flow] = state

    async def reset_state(self, flow: str) -> bool:
        def reset() -> bool:
            existed = self.tree.exists(*self._state_file(flow))
            self.tree.delete_file(*self._state_file(flow))
            return existed

        return await asyncio.to_thread(reset)

    # -- abort ----------------------------------------------------------------------------
    async def abort(self) -> None:
        await self._pool.settle_all(quiet=True)  # the flow is failing already: its error counts
        await asyncio.to_thread(self._abort_sync)

    def _abort_sync(self) -> None:
        with self._io:
            self._aborted = True
            with contextlib.suppress(Exception):
                self._close_all()
        if not self._opened:
            return
        tree = self.tree
        plan = tree.read_json(self.journal)
        if plan is not None and plan.get("run") == self.run_id:
            # The commit point was passed: finishing it is the only consistent outcome; if
            # that fails too, the next run finishes it from the journal.
            with contextlib.suppress(Exception):
                lz.apply_journal(tree, self.journal)
        else:
            with contextlib.suppress(Exception):
                tree.delete_dir(self.staging)
                lz.tidy(tree, self.staging_root)
        self._opened = False


# -- helpers --------------------------------------------------------------------------------


def _not_a_landing_zone(path: str) -> bool:
    """A OneLake path that is not a mirrored database's `Files/LandingZone`."""
    return is_onelake(path) and path.rstrip("/").rsplit("/", 1)[-1] != "LandingZone"


def _tree(path: str, options: Mapping[str, Any] | None) -> lz.Tree:
    """The landing zone on its filesystem: local disk, OneLake, or another object store."""
    if not is_object_url(path):
        import pyarrow.fs as pafs

        root = str(Path(path).resolve())
        return lz.Tree(pafs.LocalFileSystem(), root, path, local=True)
    if is_onelake(path):
        from hygge.storage import onelake

        storage = onelake.storage(path, options)
    else:
        from hygge.storage.objects import ObjectStorage

        storage = ObjectStorage.for_url(path, options)
    return lz.Tree(storage.fs, storage.location.fs_path, path, local=False, storage=storage)


def _close_stream(stream: Any) -> None:
    stream.close()


def keys_writer(sink: Any, schema: pa.Schema) -> pq.ParquetWriter:
    """A writer of the keys a run saw. Integer keys are delta-encoded without a dictionary:
    sequential ids take a few bits a row, and half the CPU of the default encoding (TPC-H
    lineitem's 6 M keys: 3.8 MB and 0.08 s instead of 17 MB and 0.18 s)."""
    integers = [f.name for f in schema if pa.types.is_integer(f.type)]
    return pq.ParquetWriter(
        sink,
        schema,
        use_dictionary=[f.name for f in schema if f.name not in integers],
        column_encoding=dict.fromkeys(integers, "DELTA_BINARY_PACKED") or None,
    )


def _home_columns(home: Any) -> list[str] | None:
    """The columns a home reads, where they can be known without reading: a file home's
    schema, a SQL home's table; None otherwise (then the first batch is checked)."""
    schema = getattr(home, "schema", None)
    if callable(schema):
        try:
            return list(schema().names)
        except Exception:
            return None
    select = getattr(home, "_select", None)
    connect = getattr(home, "_connect", None)
    if select is None or connect is None:
        return None
    session = connect()
    try:
        _, columns = select(session)
        return None if columns is None else [c.name for c in columns]
    finally:
        session.close()
