"""A Delta Lake table (delta-rs) on a local path or any object store: one flow, one commit.

replace and append (same schema, no partitions): batches stream into parquet data files in
the table's folder (`_delta_files.DataFiles`; invisible until the log lists them) and
`commit()` adds them in one Delta commit. merge, partitioned tables and schema changes:
batches stage as parquet files in a local temporary folder and `commit()` streams them, as
one RecordBatchReader, into `DeltaTable.merge` / `write_deltalake`. Either way memory stays
bounded, rows are counted from the written files' footers, and the one commit carries the
flow's incremental state:
an application transaction (`txn`, app id `hygge:FLOW`, version = run number) and the state
itself in the commit's metadata. A reader of the table sees the version before or after it,
never part of it; two writers are resolved by Delta's optimistic concurrency control (S3:
conditional writes, no lock table).

Over 400 lines: one Delta commit's lifecycle (modes, schema policy, state in the
log, direct or staged files); the data-file writer is `hygge/stores/_delta_files.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar, Literal

import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from pydantic import Field, field_validator

from hygge.contract import MultiPartStore, PathSetting, StatefulStore, Store, StoreSettings
from hygge.errors import ConfigError, HyggeError, StoreError
from hygge.secrets import mask_url
from hygge.storage import Location, ObjectStorage, credentials, is_object_url
from hygge.storage.credentials import delta_storage_options
from hygge.storage.objects import StorageError, storage_error
from hygge.stores._delta_files import DataFiles, add_actions, delta_schema, same_columns

STATE_KEY = "hygge.state."
COMMIT_ATTEMPTS = 15  # tries of one commit against other writers (delta-rs' own default)
log = logging.getLogger("hygge.stores.delta")  # -v: the table found, the write path, commits
COMMIT_KEY = "hygge.commit"  # each commit's own id, to find it in the log (`_landed`)
APP_PREFIX = "hygge:"
STAGE_ROWS_PER_FILE = 1_000_000
DATA_FILE = re.compile(r"part-\d{5}-[0-9a-f-]{32,36}-c\d{3}(\.\w+)?\.parquet")
LOG_DIR = "_delta_log"  # present (maybe still without a version) once a first commit starts


class DeltaStoreSettings(StoreSettings):
    path: PathSetting
    mode: Literal["replace", "append", "merge"] = "replace"  # type: ignore[assignment]  # widens the base's modes
    key: list[str] | None = Field(None, description="Merge: the columns that identify a row.")
    schema_policy: Literal["evolve", "freeze"] = Field(
        "evolve", description="evolve: add new columns; freeze: refuse any schema change."
    )
    partition_by: list[str] | None = None
    target_file_size: int = Field(128 << 20, gt=0, description="Bytes per data file.")
    storage_options: dict[str, str] | None = None

    @field_validator("key", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class DeltaStore(MultiPartStore, StatefulStore, Store[DeltaStoreSettings]):
    """`type: delta`: replace (overwrite), append or merge on `key`.

    Parts of a partitioned flow (replace, append): each part writes its data files straight
    into the table's folder, unlisted; the commit adds every part's files in ONE Delta commit
    (metadata only) with the flow's state and a transaction marking the flow run, so a
    repeated commit adds nothing. Their names start with a digest of the flow run, so
    `abort_parts` finds the files of a run that never committed."""

    type_name = "delta"
    Settings: ClassVar[type[DeltaStoreSettings]] = DeltaStoreSettings
    # The run's commit key (a worker sets it to its job's run of the flow): an append under
    # it commits once (`_run_app`).
    commit_key: str | None = None

    def __init__(self, name: str, settings: Any = None, **values: Any) -> None:
        super().__init__(name, settings, **values)
        s = self.settings
        if s.mode == "merge" and not s.key:
            raise ConfigError(
                "mode: merge needs `key` (the columns that identify a row)",
                key=f"store '{name}' -> key",
            )
        self.uri = s.path.rstrip("/")
        self.remote = is_object_url(self.uri)
        self._options = credentials.resolve(s.storage_options) if self.remote else {}
        self._staging: Path | None = None
        self._direct: DataFiles | None = None
        self._decided = False
        self._writer: pq.ParquetWriter | None = None
        self._files: list[Path] = []
        self._rows_in_file = 0
        self._states: dict[str, dict[str, Any]] = {}
        self._commit_id = ""  # set while `commit()` runs: this commit's id in the log
        self._part: str | None = None  # the part being staged (a partitioned flow)

    @property
    def where(self) -> str:
        return mask_url(self.uri)

    def _delta_options(self) -> dict[str, str] | None:
        if not self.remote:
            return None
        return delta_storage_options(Location.parse(self.uri), self._options)

    # -- the table as it is -----------------------------------------------------------------
    def _table(self) -> Any:
        """The existing Delta table, None if there is none; a non-Delta dataset is an error."""
        table = self._load()
        if table is not None:
            return table
        if self._holds_data():
            raise StoreError(
                f"{self.where} holds data but is not a Delta table (no _delta_log)",
                hint="point the delta store at an empty path, or convert the dataset first",
            )
        return None

    def _load(self) -> Any:
        """The Delta table at the path, or None when there is no `_delta_log`."""
        from deltalake import DeltaTable

        try:
            if DeltaTable.is_deltatable(self.uri, storage_options=self._delta_options()):
                return DeltaTable(self.uri, storage_options=self._delta_options())
        except Exception as exc:
            raise self._error("open", exc) from exc
        return None

    def _holds_data(self) -> bool:
        """Anything but Delta-style data files (`part-00000-<uuid>-c000...parquet`) and a
        `_delta_log` without its first version yet (a first commit being written by another
        run, or left by a killed one) is a foreign dataset."""
        if not self.remote:
            p = Path(self.uri)
            return p.is_dir() and any(
                f.name != LOG_DIR and not DATA_FILE.fullmatch(f.name) for f in p.iterdir()
            )
        try:
            storage = ObjectStorage.for_url(self.uri, self._options)
            storage.check_bucket()
            urls = [e.url for e in storage.list(self.uri)]
            return any(
                f"/{LOG_DIR}/" not in url and not DATA_FILE.fullmatch(url.rsplit("/", 1)[-1])
                for url in urls
            )
        except StorageError as exc:
            raise StoreError(exc.message, hint=exc.hint, transient=exc.transient) from exc

    def _error(self, what: str, exc: BaseException) -> StoreError:
        if isinstance(exc, StoreError):
            return exc
        err = storage_error(self.uri, f"{what} the Delta table at", exc)
        return StoreError(err.message, hint=err.hint, transient=err.transient)

    # -- lifecycle ----------------------------------------------------------------------
    async def check(self) -> None:
        await asyncio.to_thread(self._table)

    async def open(self) -> None:
        await asyncio.to_thread(self._open_sync)

    def _open_sync(self) -> None:
        self._cleanup()
        self._existing = self._table()  # fail before reading anything if unusable
        self._files, self._writer, self._rows_in_file, self._states = [], None, 0, {}
        log.debug(
            "store '%s' (delta): %s (mode %s)",
            self.name,
            f"table {self.where} at version {self._existing.version()}"
            if self._existing is not None
            else f"no table at {self.where} yet: the first commit creates it",
            self.settings.mode,
        )

    def _decide(self, schema: pa.Schema) -> None:
        """At the first batch: write data files in place, or stage locally for delta-rs."""
        s, existing = self.settings, self._existing
        self._check_schema(existing, schema)  # freeze refuses before anything is written
        target = delta_schema(schema)
        current = pa.schema(existing.schema().to_arrow()) if existing is not None else None
        plain = s.mode in ("replace", "append") and not s.partition_by
        if self._part is not None:  # parts: always data files in place, for the commit
            if current is not None and not same_columns(current, target):
                raise StoreError(
                    f"{self.where}: a partitioned flow adds data files to the table as they "
                    "are, but its columns differ from the table's",
                    hint="make the source's columns match the table, or run the flow "
                    "without `partitions:` (which can change the table's schema)",
                )
            prefix = _run_digest(self._part)
            self._direct = DataFiles(
                self.uri, target, s.target_file_size, s.storage_options, prefix
            )
        elif plain and (current is None or same_columns(current, target)):
            self._direct = DataFiles(self.uri, target, s.target_file_size, s.storage_options)
        else:
            self._staging = Path(tempfile.mkdtemp(prefix="hygge-delta-"))
        if self._staging is not None:
            why = (
                f"merge on {', '.join(s.key or [])}"
                if s.mode == "merge"
                else f"partition_by {', '.join(s.partition_by)}"
                if s.partition_by
                else "its columns differ from the table's"
            )
            path = f"stages locally in {self._staging}, written by delta-rs at commit ({why})"
        else:
            path = f"writes data files in place under {self.where}, invisible until one log "
            path += "commit lists them"
        log.debug("store '%s': %s", self.name, path)
        self._decided = True

    async def write(self, df: pl.DataFrame) -> None:
        table = df.to_arrow(compat_level=pl.CompatLevel.oldest())
        await asyncio.to_thread(self._stage, table)

    def _stage(self, table: pa.Table) -> None:
        if not self._decided:
            self._decide(table.schema)
        self._refuse_empty_partition_values(table)
        if self._direct is not None:
            try:
                return self._direct.write(table)
            except (pa.ArrowException, ValueError) as exc:
                raise StoreError(
                    f"cannot write a batch to {self.where}: {exc}",
                    hint="every batch of a flow must have the same columns and types",
                ) from exc
            except HyggeError as exc:
                raise self._error("write to", exc) from exc
        assert self._staging is not None, "open() first"
        if self._writer is not None and not table.schema.equals(self._writer.schema):
            raise StoreError(
                f"cannot write a batch to {self.where}: its columns differ from the first batch",
                hint="every batch of a flow must have the same columns and types",
            )
        if self._writer is None or self._rows_in_file >= STAGE_ROWS_PER_FILE:
            self._close_writer()
            path = self._staging / f"stage-{len(self._files):05d}.parquet"
            # lz4, no statistics: the staged files are read once, locally, right away.
            self._writer = pq.ParquetWriter(
                path, table.schema, compression="lz4", write_statistics=False
            )
            self._files.append(path)
            self._rows_in_file = 0
        self._writer.write_table(table)
        self._rows_in_file += table.num_rows

    def _refuse_empty_partition_values(self, table: pa.Table) -> None:
        """Delta keeps a partition value as text, where '' means NULL: an empty string in a
        `partition_by` column would read back as NULL. Refused rather than changed."""
        import pyarrow.compute as pc

        for name in self.settings.partition_by or []:
            if name not in table.column_names:
                continue  # delta-rs names the missing column at the commit
            column = table.column(name)
            text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
            if text and pc.any(pc.equal(column, "")).as_py():
                raise StoreError(
                    f"{self.where}: partition_by column '{name}' holds '' (an empty "
                    "string), which a Delta table stores as NULL; nothing was written",
                    hint=f"map it in the source (e.g. NULLIF({name}, '') or a value of "
                    "your own), or partition by another column",
                )

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def staged_rows(self) -> int | None:
        return await asyncio.to_thread(self._staged_rows_sync)

    def _staged_rows_sync(self) -> int:
        if self._direct is not None:
            return sum(self._direct.row_counts())
        self._close_writer()
        return sum(pq.read_metadata(f).num_rows for f in self._files)

    def stage_state(self, flow: str, state: dict[str, Any]) -> None:
        self._states[flow] = state

    async def read_state(self, flow: str) -> dict[str, Any] | None:
        return await asyncio.to_thread(self._read_state_sync, flow)

    def _read_state_sync(self, flow: str) -> dict[str, Any] | None:
        table = self._table()
        if table is None or table.transaction_version(APP_PREFIX + flow) is None:
            return None
        for limit in (50, None):  # the newest commits first; the whole log only if needed
            for commit in table.history(limit):  # newest first
                value = commit.get(STATE_KEY + flow)
                if value is not None:
                    state: dict[str, Any] | None = json.loads(value)  # None after a reset
                    return state
        return None

    async def reset_state(self, flow: str) -> bool:
        return await asyncio.to_thread(self._reset_state_sync, flow)

    def _reset_state_sync(self, flow: str) -> bool:
        """An empty append commit that records `null` state for the flow."""
        from deltalake import CommitProperties, Transaction, write_deltalake

        table = self._table()
        if table is None or self._read_state_sync(flow) is None:
            return False
        version = (table.transaction_version(APP_PREFIX + flow) or 0) + 1
        empty = table.schema().to_arrow()
        write_deltalake(
            table,
            pa.Table.from_batches([], schema=pa.schema(empty)),
            mode="append",
            storage_options=self._delta_options(),
            commit_properties=CommitProperties(
                custom_metadata={STATE_KEY + flow: "null"},
                app_transactions=[Transaction(APP_PREFIX + flow, version, _now_ms())],
            ),
        )
        return True

    async def commit(self) -> None:
        await asyncio.to_thread(self._commit_sync)

    def _commit_sync(self) -> None:
        self._close_writer()
        if self._appended_already():
            log.info(
                "store '%s': this run's rows were appended to %s already; nothing more is "
                "published",
                self.name,
                self.where,
            )
            self._cleanup()
            return
        self._commit_id = uuid.uuid4().hex
        try:
            # delta-rs itself would retry a commit whose version was taken, even by this very
            # commit (its answer lost, the PUT retried): an append then lands twice. So it
            # tries once (max_commit_retries=0) and the log decides: ours is there (done), or
            # another writer's (try again on top of it).
            for attempt in range(1, COMMIT_ATTEMPTS + 1):
                log.debug(
                    "store '%s': committing to %s (attempt %d: %s)",
                    self.name,
                    self.where,
                    attempt,
                    "one log commit adding the data files"
                    if self._direct is not None
                    else f"delta-rs {self.settings.mode} of {len(self._files)} staged file(s)",
                )
                try:
                    if self._direct is not None:
                        self._commit_files(self._direct)
                    else:
                        self._publish()
                    return
                except StoreError:
                    raise
                except Exception as exc:
                    if self._landed():
                        return  # the commit is in the log; only its answer was lost
                    if attempt == COMMIT_ATTEMPTS or not _version_taken(exc):
                        raise self._error("commit to", exc) from exc
        finally:
            self._commit_id = ""
            # Data files are kept even if the commit failed: it may have reached the log
            # before the error (a timeout), and deleting them would break the table. Files
            # the log does not list are invisible; VACUUM removes them.
            self._cleanup()

    def _run_app(self) -> str | None:
        """The Delta transaction app id of an append made under a commit key (a worker's
        run of the flow): the same run sent again after its commit landed adds nothing."""
        if not self.commit_key or self.settings.mode != "append":
            return None
        return f"{APP_PREFIX}run:{self.commit_key}"

    def _appended_already(self) -> bool:
        app = self._run_app()
        if app is None:
            return False
        table = self._load()
        return table is not None and table.transaction_version(app) is not None

    def _landed(self) -> bool:
        """Is this commit in the log after all? A commit whose answer was lost (a cut
        connection) is retried by the object store client, finds its own version taken, and
        delta-rs reports a concurrent transaction: the log, not the error, says what happened."""
        if not self._commit_id:
            return False
        try:
            table = self._load()
            history = table.history(50) if table is not None else []
        except Exception:
            return False
        return any(c.get(COMMIT_KEY) == self._commit_id for c in history)

    def _commit_properties(self, table: Any, marks: list[Any] | None = None) -> Any:
        """The flow's state in the commit: a txn per flow plus the state in its metadata
        (and `marks`: further transactions, e.g. the flow run of a partitioned commit)."""
        from deltalake import CommitProperties, Transaction

        transactions = list(marks or [])
        if (run_app := self._run_app()) is not None:
            transactions.append(Transaction(run_app, 1, _now_ms()))
        metadata: dict[str, str] = {COMMIT_KEY: self._commit_id} if self._commit_id else {}
        for flow, state in self._states.items():
            previous = table.transaction_version(APP_PREFIX + flow) if table is not None else None
            transactions.append(Transaction(APP_PREFIX + flow, (previous or 0) + 1, _now_ms()))
            metadata[STATE_KEY + flow] = json.dumps(state, default=str)
        return CommitProperties(
            custom_metadata=metadata or None,
            app_transactions=transactions or None,
            # commit(): tried once, the log decides (see _commit_sync); else delta-rs retries
            max_commit_retries=0 if self._commit_id else None,
        )

    def _commit_files(self, files: DataFiles) -> None:
        self._commit_actions(files.add_actions(), files.schema)

    def _commit_actions(self, actions: list[Any], schema: pa.Schema, marks: Any = None) -> None:
        """Add data files already in the table's folder in one Delta commit."""
        from deltalake import Schema
        from deltalake.transaction import create_table_with_add_actions

        mode = "overwrite" if self.settings.mode == "replace" else "append"
        # As it is now (another writer may have committed meanwhile); our own files are in
        # the folder already, so a missing log means "new table", not "foreign data".
        table = self._load()
        if table is None:
            try:
                create_table_with_add_actions(
                    self.uri,
                    Schema.from_arrow(schema),
                    actions,
                    mode="error",
                    storage_options=self._delta_options(),
                    commit_properties=self._commit_properties(None, marks),
                )
                return
            except Exception:
                if self._landed():
                    return  # our own create is in the log; only its answer was lost
                table = self._load()  # created by a concurrent writer: commit onto it
                if table is None:
                    raise
        table.create_write_transaction(
            actions,
            mode=mode,
            schema=schema,
            commit_properties=self._commit_properties(table, marks),
        )

    def _publish(self) -> None:
        from deltalake import write_deltalake

        table = self._table()
        if self._files:
            schema = pq.read_schema(self._files[0])
        elif table is None:
            return  # nothing read and no table: nothing to create
        elif self.settings.mode != "replace" and not self._states:
            return  # nothing to add and no state to record: no empty commit
        else:  # replace with no rows empties the table; or an empty commit with the state
            schema = pa.schema(table.schema().to_arrow())
        self._check_schema(table, schema)
        if self.settings.mode == "merge":
            self._check_keys(schema)
        data = pads.dataset([str(f) for f in self._files], schema=schema, format="parquet")
        reader = data.scanner(batch_size=64_000).to_reader()
        props = self._commit_properties(table)
        s = self.settings
        evolve = s.schema_policy == "evolve"
        if s.mode == "merge" and table is not None:
            predicate = " AND ".join(f"t.{_quote(k)} = s.{_quote(k)}" for k in s.key or [])
            (
                table.merge(
                    reader,
                    predicate,
                    source_alias="s",
                    target_alias="t",
                    merge_schema=evolve,
                    commit_properties=props,
                )
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute()
            )
            return
        write_deltalake(
            table if table is not None else self.uri,
            reader,
            mode="overwrite" if s.mode == "replace" else "append",
            schema_mode=("overwrite" if s.mode == "replace" else "merge") if evolve else None,
            partition_by=s.partition_by,
            target_file_size=s.target_file_size,
            storage_options=self._delta_options(),
            commit_properties=props,
        )

    def _check_keys(self, schema: pa.Schema) -> None:
        """Merge needs one row per key and no NULL key, across every batch of the flow (as
        the SQL stores refuse): otherwise duplicates are stored, or a row matches nothing."""
        key = self.settings.key or []
        missing = [k for k in key if k not in schema.names]
        if missing:
            raise StoreError(
                f"{self.where}: the merge key column(s) {', '.join(missing)} are not in the data",
                hint=f"the data has: {', '.join(schema.names)}",
            )
        if not self._files:
            return
        rows = pl.scan_parquet([str(f) for f in self._files]).select(key)
        nulls = rows.filter(pl.any_horizontal(pl.col(k).is_null() for k in key))
        null_count = nulls.select(pl.len()).collect().item()
        if null_count:
            raise StoreError(
                f"{self.where}: {null_count:,} row(s) have a NULL merge key ({', '.join(key)})",
                hint="merge matches rows on the key; fill or filter NULL keys in the source",
            )
        dups = rows.group_by(key).len().filter(pl.col("len") > 1).sort("len", descending=True)
        sample = dups.head(3).collect()
        if sample.height:
            shown = "; ".join(
                "(" + ", ".join(f"{k}={r[k]!r}" for k in key) + f") {r['len']} times"
                for r in sample.iter_rows(named=True)
            )
            raise StoreError(
                f"{self.where}: duplicate merge key ({', '.join(key)}) in the data: {shown}",
                hint="merge needs one row per key; de-duplicate in the source",
            )

    def _check_schema(self, table: Any, incoming: pa.Schema) -> None:
        if table is None or self.settings.schema_policy != "freeze":
            return
        current = pa.schema(table.schema().to_arrow())
        have = {f.name: f.type for f in current}
        changes = [
            f"new column '{f.name}'" if f.name not in have else f"'{f.name}' is {f.type}"
            for f in incoming
            if f.name not in have or not _same_type(have[f.name], f.type)
        ]
        if changes:
            raise StoreError(
                f"{self.where}: the data does not match the table's schema: {', '.join(changes)}; "
                "schema_policy: freeze refuses changes",
                hint="cast the columns in the source, or set schema_policy: evolve",
            )

    async def abort(self) -> None:
        await asyncio.to_thread(self._abort_sync)

    def _abort_sync(self) -> None:
        if self._direct is not None:
            self._direct.discard()  # never listed in the log: no reader saw them
        self._cleanup()

    def _cleanup(self) -> None:
        self._direct, self._decided = None, False
        with contextlib.suppress(Exception):
            self._close_writer()
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None

    def describe(self) -> str:
        return f"delta:{self.where}"

    # -- parts of a partitioned flow (MultiPartStore) -------------------------------------
    @classmethod
    def parts_problem(cls, settings: Any) -> str | None:
        if settings.mode == "merge":
            return "takes parts in mode replace or append only (merge reads the whole source once)"
        if settings.partition_by:
            return "takes parts only without partition_by"
        return None

    async def open_part(self, part: str) -> None:
        await asyncio.to_thread(self._open_part_sync, part)

    def _open_part_sync(self, part: str) -> None:
        self._open_sync()
        self._part = part

    async def seal_part(self, part: str) -> dict[str, Any]:
        return await asyncio.to_thread(self._seal_part_sync, part)

    def _seal_part_sync(self, part: str) -> dict[str, Any]:
        files = self._direct.written() if self._direct is not None else []
        self._direct, self._decided = None, False  # the files are the part's now
        return {"part": part, "files": files, "rows": sum(rows for _, _, rows in files)}

    async def parts_rows(self, parts: list[dict[str, Any]]) -> int | None:
        return await asyncio.to_thread(self._parts_rows_sync, parts)

    def _parts_rows_sync(self, parts: list[dict[str, Any]]) -> int:
        """Rows of every part's files, read back from their footers."""
        storage = ObjectStorage.for_url(self.uri, self._options) if self.remote else None
        total = 0
        for description in parts:
            for name, _, _ in description.get("files", []):
                where = f"{self.uri}/{name}"
                try:
                    source = storage.open_input(where) if storage else where
                    total += pq.read_metadata(source).num_rows
                except (OSError, StorageError) as exc:
                    raise StoreError(
                        f"part {description['part']} of {self.where}: data file {name} "
                        f"cannot be read ({exc}); nothing was committed",
                        hint="run the flow again",
                    ) from exc
        return total

    async def commit_parts(self, parts: list[dict[str, Any]]) -> None:
        await asyncio.to_thread(self._commit_parts_sync, parts)

    def _commit_parts_sync(self, parts: list[dict[str, Any]]) -> None:
        from deltalake import Transaction

        if not parts:
            return
        app = _parts_app(parts[0]["part"])
        try:
            table = self._table()
            if table is not None and table.transaction_version(app) is not None:
                return  # this flow run's commit landed already: add nothing more
            files = [tuple(f) for p in parts for f in p.get("files", [])]
            if files:
                first = f"{self.uri}/{files[0][0]}"
                if self.remote:
                    storage = ObjectStorage.for_url(self.uri, self._options)
                    schema = pq.read_schema(storage.open_input(first))
                else:
                    schema = pq.read_schema(first)
            elif table is None:
                return  # nothing read and no table: nothing to create
            else:
                schema = pa.schema(table.schema().to_arrow())
            self._check_schema(table, schema)
            log.debug(
                "store '%s': committing %d part(s), %d data file(s), in one log commit to %s",
                self.name,
                len(parts),
                len(files),
                self.where,
            )
            mark = Transaction(app, 1, _now_ms())
            self._commit_actions(add_actions(files), schema, [mark])
        except StoreError:
            raise
        except Exception as exc:
            raise self._error("commit to", exc) from exc

    async def abort_parts(self, parts: list[dict[str, Any]]) -> None:
        await asyncio.to_thread(self._abort_parts_sync, parts)

    def _abort_parts_sync(self, parts: list[dict[str, Any]]) -> None:
        """Delete the data files of a flow run whose commit never landed (unlisted, so no
        reader saw them); after a commit, they are the table: nothing to do."""
        if not parts:
            return
        with contextlib.suppress(Exception):
            table = self._load()
            if table is not None and table.transaction_version(_parts_app(parts[0]["part"])):
                return
            prefix = f"-{_run_digest(parts[0]['part'])}"
            if self.remote:
                storage = ObjectStorage.for_url(self.uri, self._options)
                for entry in storage.list(self.uri):
                    name = entry.url.rsplit("/", 1)[-1]
                    if "/" + LOG_DIR + "/" not in entry.url and prefix in name:
                        storage.delete(entry.url)
            else:
                for path in Path(self.uri).glob(f"part-*{prefix}*.parquet"):
                    path.unlink(missing_ok=True)


def _same_type(a: pa.DataType, b: pa.DataType) -> bool:
    """Equal up to Delta's normalisation (string/large_string, timestamp units)."""
    norm = {pa.large_string(): pa.string(), pa.large_binary(): pa.binary()}
    a, b = norm.get(a, a), norm.get(b, b)
    if pa.types.is_timestamp(a) and pa.types.is_timestamp(b):
        return (a.tz is None) == (b.tz is None)
    return bool(a == b)


def _version_taken(exc: BaseException) -> bool:
    """Did the commit fail because another commit took its version (try again on top)?"""
    from deltalake.exceptions import CommitFailedError

    text = str(exc).lower()
    return isinstance(exc, CommitFailedError) or any(
        w in text for w in ("concurrent", "conflict", "already exists")
    )


def _run_digest(part: str) -> str:
    """12 hex digits naming the flow run a part belongs to ("RUN.p0003" -> digest of RUN)."""
    return hashlib.sha1(part.split(".", 1)[0].encode()).hexdigest()[:12]


def _parts_app(part: str) -> str:
    """The Delta transaction app id marking a partitioned flow run's commit."""
    return f"{APP_PREFIX}parts:{part.split('.', 1)[0]}"


def _quote(column: str) -> str:
    return f"`{column}`"


def _now_ms() -> int:
    return int(time.time() * 1000)
