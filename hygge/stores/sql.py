"""A SQL table out: staged in a side table, published in one transaction.

Every batch is bulk-loaded into `_hygge_stage_<table>_<run><attempt>` (PostgreSQL: binary
COPY through ADBC; MySQL/MariaDB: LOAD DATA LOCAL INFILE; others: SQLAlchemy executemany).
`commit()` then publishes all of it at once:
- replace: the staging table is swapped in for the target (readers see old or new, never half);
- append: INSERT INTO target SELECT FROM staging;
- merge: upsert on `key` from staging (PostgreSQL MERGE, MySQL ON DUPLICATE KEY UPDATE,
  SQLite ON CONFLICT).
`abort()` drops the staging table, so the target is untouched by a failed run. Each attempt
(a retry included) stages in a table of its own, and `open()` sweeps the ones whose run died.

What lands how is hygge/sql/load_plan.py (pure); the SQL each database spells its own way is
on its Session (hygge/sql/base.py and the dialect modules); this module only orders the steps.

Over 400 lines: the SQL store's lifecycle (open, stage, verify, publish, parts,
state, locks) in order; all dialect SQL is on the sessions in `hygge/sql/`, the load plan is
the pure `hygge/sql/load_plan.py`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import re
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

import polars as pl
import pyarrow as pa
from pydantic import ConfigDict, Field, field_validator, model_validator

from hygge.contract import MultiPartStore, StatefulStore, Store, StoreSettings, parts_run
from hygge.errors import HyggeError, StoreError
from hygge.locks import RunLock
from hygge.sql import faults, state_table
from hygge.sql.base import Session
from hygge.sql.connect import connect
from hygge.sql.load_plan import LoadPlan, check_merge_target, plan_load
from hygge.sql.loaders import Loader, loader_for
from hygge.sql.lock import run_lock
from hygge.sql.types import Column, cast_column, normalize
from hygge.sql.url import SqlUrl, parse_url

T = TypeVar("T")
log = logging.getLogger("hygge.stores.sql")
URL_SCHEMES = ("postgresql", "postgres", "pgsql", "mysql", "mariadb", "sqlite")
ATTEMPT = "_hygge_attempt"  # a shared parts table's column: the attempt that loaded the row


class SQLStoreSettings(StoreSettings):
    model_config = ConfigDict(populate_by_name=True)

    mode: Literal["replace", "append", "merge"] = "replace"  # type: ignore[assignment]  # widens the base's modes
    connection: str | None = Field(
        None, description="SQLAlchemy URL (default: $DATABASE_URL), e.g. postgresql://u@h/db."
    )
    table: str = Field(description="Target table (created from the data when missing).")
    db_schema: str | None = Field(None, alias="schema", description="Schema of `table`.")
    key: list[str] | None = Field(None, description="Key columns for mode: merge.")
    streams: int = Field(
        2,
        ge=1,
        le=16,
        description="PostgreSQL COPY / MySQL LOAD DATA connections loading at once.",
    )
    schema_policy: Literal["evolve", "freeze"] = Field(
        "evolve", description="evolve: alter a column whose type changed; freeze: refuse."
    )

    @field_validator("key", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _merge_needs_key(self) -> SQLStoreSettings:
        if self.mode == "merge" and not self.key:
            raise ValueError("mode: merge needs `key: [column, ...]` to match rows on")
        return self


@dataclass
class _Run:
    """What one open() .. commit()/abort() holds; open() makes it, commit/abort end it."""

    session: Session
    staging: str  # this attempt's own staging table (a retry never reuses a name)
    target: list[Column] | None  # the target's columns when the run opened (None: missing)
    plan: LoadPlan | None = None  # made from the first batch
    loader: Loader | None = None
    staging_created: bool = False
    states: dict[str, dict[str, Any]] = field(default_factory=dict)  # flow -> state record
    batch_schema: pa.Schema | None = None  # the first batch's, as given (a sealed part's)
    # A part of a partitioned run loading the run's shared table (transactional DDL):
    shared_key: str | None = None  # the flow run all its parts belong to
    attempt: int | None = None  # this attempt's id, in every row it loads (ATTEMPT)
    # A partitioned append reading the parts' rows straight into the target: each source
    # table, and the condition that picks its sealed rows (None: all of them):
    sources: list[tuple[str, str | None]] = field(default_factory=list)
    mark: str | None = None  # an append's or partitioned commit's mark, published with it


class SQLStore(MultiPartStore, StatefulStore, Store[SQLStoreSettings]):
    """Writes a database table; `SQLStore("users", connection=url)` targets table `users`."""

    type_name = "sql"
    url_schemes: ClassVar[tuple[str, ...]] = URL_SCHEMES
    Settings: ClassVar[type[SQLStoreSettings]] = SQLStoreSettings

    @classmethod
    def defaults(cls, name: str, values: Mapping[str, Any]) -> dict[str, Any]:
        return {"table": name}  # the Python API: the store's name is its table

    def __init__(self, name: str, settings: Any = None, **values: Any) -> None:
        super().__init__(name, settings, **values)
        self.run_id = uuid.uuid4().hex[:10]
        # An append commits once under this key, kept across the store's attempts (a worker
        # sets it to its job's run of the flow, kept across deliveries): see commit().
        self.commit_key: str | None = uuid.uuid4().hex
        self.attempts = 0  # open() calls: each attempt stages in a table of its own
        self.run: _Run | None = None
        self._pending_states: dict[str, dict[str, Any]] = {}

    # -- naming -----------------------------------------------------------------------------
    @property
    def url(self) -> SqlUrl:
        return parse_url(self.settings.connection, f"store '{self.name}'")

    @property
    def where(self) -> str:
        s = self.settings
        return f"{s.db_schema}.{s.table}" if s.db_schema else s.table

    def describe(self) -> str:
        return f"sql:{self.url.masked} table {self.where}"

    def _staging_prefix(self, session: Session, kind: str = "stage") -> str:
        """`_hygge_stage_<table>_`: every attempt's staging table starts so (the sweep's key).
        `kind="old"`: `_hygge_old_<table>_`, where a MySQL replace moves the old target for
        a moment (named after the staging table it is swapped with)."""
        room = session.max_identifier - len("_hygge_stage__") - len(self.run_id) - 2
        base = re.sub(r"\W", "_", self.settings.table)[:room]
        return f"_hygge_{kind}_{base}_"

    def _open_run(self) -> _Run:
        if self.run is None:
            raise StoreError(f"store '{self.name}': used before open()")
        return self.run

    shared_modes: ClassVar[tuple[str, ...]] = ("append", "merge")

    def destination(self) -> str | None:
        s = self.settings
        try:
            url = self.url
            server = f"{url.dialect}:{url.where()}"
        except HyggeError:  # unresolved `${VAR}` (enqueue validates before resolving)
            server = str(s.connection)
        return f"sql:{server}|{s.db_schema or ''}.{s.table}"

    def lock(self, flow: str) -> RunLock:
        return run_lock(self.url, self.where, flow)

    # -- lifecycle --------------------------------------------------------------------------
    async def check(self) -> None:
        await self.open()
        await self.abort()

    async def open(self) -> None:
        await asyncio.to_thread(self._open_sync)

    def _open_sync(self) -> None:
        self.attempts += 1
        session = connect(self.url, StoreError, f"store '{self.name}'")
        try:
            s = self.settings
            target = self._db(
                "read the target's columns", lambda: session.columns(s.table, s.db_schema)
            )
            prefix = self._staging_prefix(session)
            run = _Run(session, f"{prefix}{self.run_id}{self.attempts % 100:02d}", target)
            swept = self._db(
                "clean up after runs that died",
                lambda: session.sweep_staging(run.staging, prefix, s.db_schema),
            )
            swept += self._db(
                "clean up after runs that died",
                lambda: session.sweep_moved(
                    prefix, self._staging_prefix(session, "old"), s.db_schema
                ),
            )
            for name in swept:
                log.warning("dropped %s, left by a run that did not finish", name)
            schema = s.db_schema
            if schema and not self._db("check the schema", lambda: session.schema_exists(schema)):
                raise self._error(f"schema '{schema}' does not exist", "create it, or fix `schema`")
            if s.mode == "merge" and target is not None:
                self._check_merge_target(session, target)
        except BaseException:
            with contextlib.suppress(Exception):  # the flow aborts no store that failed to open
                session.close()
            raise
        self.run = run

    def _check_merge_target(self, session: Session, target: list[Column]) -> None:
        s = self.settings
        key = s.key or []
        self._db("check the merge key", lambda: check_merge_target(target, key))
        if not self._db("read the server version", session.merge_needs_unique_key):
            return
        keys = self._db(
            "read the target's indexes", lambda: session.unique_keys(s.table, s.db_schema)
        )
        if set(key) not in keys:
            raise self._error(
                f"merge on ({', '.join(key)}) needs a primary key or unique index on "
                "exactly those columns",
                f"add one: {session.unique_key_fix(s.table, s.db_schema, key)}",
            )

    async def write(self, df: pl.DataFrame) -> None:
        await asyncio.to_thread(self._write_sync, df.to_arrow())

    def _write_sync(self, table: pa.Table) -> None:
        run = self._open_run()
        if run.batch_schema is None:
            run.batch_schema = table.schema
        table = normalize(table)
        if run.plan is None:
            run.plan = self._plan(run, table.schema)
            self._create_staging(run, run.plan)
        plan = run.plan
        if table.column_names != plan.names:
            raise self._error(
                f"a batch has columns {table.column_names}, the first had {plan.names}",
                "every batch of a flow must have the same columns",
            )
        arrays = [
            cast_column(table.column(i), col.type, col.name, col.max_length)
            for i, col in enumerate(plan.columns)
        ]
        data = pa.Table.from_arrays(arrays, names=plan.names)
        if run.attempt is not None:  # a part's rows in the shared table: tagged
            tag = pa.repeat(pa.scalar(run.attempt, pa.int64()), data.num_rows)
            data = data.append_column(ATTEMPT, tag)
        loader = run.loader
        assert loader is not None
        self._db("load a batch into the staging table", lambda: loader.put(data))

    def _plan(self, run: _Run, schema: pa.Schema) -> LoadPlan:
        s = self.settings
        return self._db(
            "plan the load",
            lambda: plan_load(
                run.target,
                schema,
                run.session.rules,
                mode=s.mode,
                schema_policy=s.schema_policy,
                key=s.key,
            ),
        )

    def _create_staging(self, run: _Run, plan: LoadPlan) -> None:
        session, schema = run.session, self.settings.db_schema
        if run.shared_key is not None:  # a part: the run's shared table, made by the first
            run.staging = self._shared_table(session, run.shared_key, plan)
            steps = session.create_shared_steps(
                run.staging, schema, [*plan.names, ATTEMPT], [*plan.staging_ddl, "BIGINT"]
            )
            self._db("create the parts' table", lambda: session.transaction(steps))
        else:
            sql = session.create_table_sql(run.staging, schema, plan.names, plan.staging_ddl)
            self._db("create the staging table", lambda: session.transaction([sql]))
        run.staging_created = True
        run.loader = loader_for(session, run.staging, schema, self.settings.streams)

    async def staged_rows(self) -> int | None:
        return await asyncio.to_thread(self._staged_rows_sync)

    def _staged_rows_sync(self) -> int:
        run = self._open_run()
        if not run.staging_created or run.loader is None:
            return 0
        loader, session = run.loader, run.session
        self._db("finish loading the staging table", loader.finish)
        if loader.server_rows is not None:
            return loader.server_rows  # the server's own count of rows it took
        schema, attempt = self.settings.db_schema, run.attempt
        if attempt is not None:  # a shared parts table: this attempt's rows
            return self._db(
                "count the staged rows",
                lambda: session.count_by(run.staging, schema, ATTEMPT).get(attempt, 0),
            )
        n = self._db("count the staged rows", lambda: session.count(run.staging, schema))
        session.rollback()
        return n

    async def commit(self) -> None:
        await asyncio.to_thread(self._commit_once_sync)

    def _commit_once_sync(self) -> None:
        """Publish; an append publishes once under its commit key: tried again after its
        publish landed (a COMMIT whose answer was lost, then retried; a worker killed before
        it recorded the flow as done, then sent again), it finds the mark that publish wrote
        and publishes nothing more."""
        run = self._open_run()
        self._finish_loading(run)  # its rows committed before the mark is looked for
        if self.commit_key and self.settings.mode == "append":
            run.mark = state_table.mark_key(self.settings.table, self.commit_key)
            if self._marked(run.session, run.mark):
                log.info(
                    "store '%s': this run's rows were appended to %s already; nothing more "
                    "is published",
                    self.name,
                    self.where,
                )
                self._abort_sync()
                return
        self._commit_sync()

    def _finish_loading(self, run: _Run) -> None:
        if run.loader is not None:  # staged_rows() normally did this already
            self._db("finish loading the staging table", run.loader.finish)
            run.loader = None

    def _commit_sync(self, gather: list[str] | None = None) -> None:
        """Publish in one transaction; `gather`: statements that fill the staging table
        first, inside that transaction (a partitioned commit's parts)."""
        run, s = self._open_run(), self.settings
        session = run.session
        self._finish_loading(run)
        if s.mode == "merge" and run.staging_created:
            self._check_keys(run)
        if run.states or run.mark:  # state row and mark commit in the data's transaction
            self._db("create the state table", lambda: self._prepare_state(run))
        steps = (gather or []) + self._publish_steps(run)
        if run.states:
            steps += state_table.publish_steps(session, s.db_schema, run.states)
        if run.mark:  # after any RENAME: where DDL commits by itself, a replace is repeatable
            steps += state_table.mark_steps(session, s.db_schema, run.mark)
        self._db(f"publish ({s.mode}) into the target", lambda: session.transaction(steps))
        if run.mark:
            state_table.expire_marks(session, s.db_schema, run.mark)
        if run.staging_created and run.target is not None:
            with contextlib.suppress(Exception):  # where DROP is not transactional (MySQL)
                session.drop(run.staging, s.db_schema)
        run.staging_created = False
        self._close()

    # -- parts of a partitioned flow (MultiPartStore) ---------------------------------------
    # Where DDL is transactional (PostgreSQL), every part loads ONE table of the flow run,
    # `_hygge_parts_<table>_<run>_<columns>`, each row tagged with its attempt's id (a
    # random integer in the column `_hygge_attempt`), and commits when sealed. The commit
    # publishes that table itself, in one transaction: it waits out every writer (an
    # exclusive lock), deletes the rows of attempts that did not seal (a retried part's dead
    # attempt: exact), drops the tag column (catalog only) and, for `replace` or a first
    # load, renames the table into place; an `append` inserts the sealed attempts' rows into
    # the target. No copy of the parts. Parts whose columns differ load a table each (the
    # name ends with a digest of the columns), and `merge` reads one staging table: then
    # the sealed attempts' rows are copied into a staging table first.
    # Elsewhere (MySQL/MariaDB: DDL commits by itself; SQLite) each part (each attempt) loads
    # a table of its own, `_hygge_part_<table>_<hash of the part>` (a re-run of the part
    # replaces what a dead attempt left); an append into an existing table inserts every
    # part's rows straight into the target, else the commit copies every part into one
    # staging table, then publishes it as a single run would, in one transaction.
    # Either way a commit that dies leaves every part's rows whole for the commit run again.

    def _part_table(self, session: Session, part: str) -> str:
        digest = hashlib.sha1(part.encode()).hexdigest()[:12]  # the same in every process
        room = session.max_identifier - len("_hygge_part__") - len(digest)
        base = re.sub(r"\W", "_", self.settings.table)[:room]
        return f"_hygge_part_{base}_{digest}"

    def _shared_prefix(self, session: Session, run_key: str) -> str:
        """`_hygge_parts_<table>_<run>_`: the tables every part of one flow run loads."""
        digest = hashlib.sha1(run_key.encode()).hexdigest()[:10]
        room = session.max_identifier - len("_hygge_parts___") - len(digest) - 6
        base = re.sub(r"\W", "_", self.settings.table)[:room]
        return f"_hygge_parts_{base}_{digest}_"

    def _shared_table(self, session: Session, run_key: str, plan: LoadPlan) -> str:
        columns = json.dumps([plan.names, plan.staging_ddl]).encode()
        return self._shared_prefix(session, run_key) + hashlib.sha1(columns).hexdigest()[:6]

    async def open_part(self, part: str) -> None:
        await asyncio.to_thread(self._open_part_sync, part)

    def _open_part_sync(self, part: str) -> None:
        self._open_sync()
        run = self._open_run()
        if run.session.transactional_ddl:  # the run's shared table, named at the first batch
            run.shared_key = part.split(".", 1)[0]
            run.attempt = secrets.randbits(62)
            return
        run.staging = self._part_table(run.session, part)
        schema = self.settings.db_schema
        self._db("drop a dead attempt's part", lambda: run.session.drop(run.staging, schema))

    async def seal_part(self, part: str) -> dict[str, Any]:
        return await asyncio.to_thread(self._seal_part_sync, part)

    def _seal_part_sync(self, part: str) -> dict[str, Any]:
        run = self._open_run()
        rows = self._staged_rows_sync()
        self._db("commit the part's table", run.session.commit)
        sealed: dict[str, Any] = {"part": part, "rows": rows, "table": None}
        if run.staging_created and run.plan is not None:
            assert run.batch_schema is not None  # given by the batch that made the staging
            sealed["table"] = run.staging
            sealed["attempt"] = run.attempt  # None: a table of the part's own
            sealed["arrow_schema"] = base64.b64encode(
                run.batch_schema.serialize().to_pybytes()
            ).decode()
        run.staging_created = False  # sealed: the part's table outlives this connection
        self._close()
        return sealed

    async def parts_rows(self, parts: list[dict[str, Any]]) -> int | None:
        return await asyncio.to_thread(self._parts_rows_sync, parts)

    def _parts_rows_sync(self, parts: list[dict[str, Any]]) -> int:
        """Rows of the sealed attempts, counted by the database (rows of dead attempts in a
        shared table are not counted: the commit deletes them)."""
        schema = self.settings.db_schema

        def count(db: Session) -> int:
            total, shared = 0, {}
            for p in parts:
                if not p.get("table"):
                    continue
                if p.get("attempt") is None:
                    total += db.count(p["table"], schema)
                    continue
                if p["table"] not in shared:
                    shared[p["table"]] = db.count_by(p["table"], schema, ATTEMPT)
                total += shared[p["table"]].get(int(p["attempt"]), 0)
            return total

        return self._with_session("count the staged rows", count)

    async def parts_committed(self, parts: list[dict[str, Any]]) -> bool:
        return await asyncio.to_thread(
            self._with_session,
            "look for the run's commit mark",
            lambda db: self._parts_committed(db, parts),
        )

    async def commit_parts(self, parts: list[dict[str, Any]]) -> None:
        await asyncio.to_thread(self._commit_parts_sync, parts)

    def _commit_parts_sync(self, parts: list[dict[str, Any]]) -> None:
        states = {**self._pending_states, **(self.run.states if self.run else {})}
        self._pending_states = {}
        self._close()
        self._open_sync()
        run = self._open_run()
        run.states = states
        try:
            if self._parts_committed(run.session, parts):
                log.info(
                    "store '%s': the parts of this run were committed into %s already; "
                    "nothing more is published",
                    self.name,
                    self.where,
                )
                self._close()
                return
            run.mark = self._parts_mark(parts)
            tables = [p for p in parts if p.get("table")]
            if tables and self._in_place(tables):
                self._commit_sync(self._adopt_parts(run, tables))
                return
            if tables:
                first = pa.ipc.read_schema(
                    pa.py_buffer(base64.b64decode(tables[0]["arrow_schema"]))
                )
                self._write_sync(first.empty_table())  # the plan and the staging table
                loader = run.loader
                assert loader is not None  # made with the staging table just above
                self._db("finish the staging table", loader.finish)
                run.loader = None
                plan = run.plan
                assert plan is not None
                if self._append_directly(run):  # the publish reads every part: no copy
                    run.sources = [self._part_source(run.session, p) for p in tables]
                else:
                    copies = [self._gather_sql(run.session, run.staging, p, plan) for p in tables]
                    self._db("gather the parts", lambda: run.session.transaction(copies))
            self._commit_sync()
        except BaseException:
            self._abort_sync()
            raise

    def _parts_mark(self, parts: list[dict[str, Any]]) -> str | None:
        """The key of the row in `_hygge_state` that marks this flow run's commit."""
        run = parts_run(parts)
        return None if run is None else state_table.mark_key(self.settings.table, f"parts-{run}")

    def _parts_committed(self, session: Session, parts: list[dict[str, Any]]) -> bool:
        """Has this flow run's commit landed (a commit step run again after its publish)?"""
        return self._marked(session, self._parts_mark(parts))

    def _marked(self, session: Session, mark: str | None) -> bool:
        """Is there a commit mark `mark` (`state_table.mark_key`)?"""
        if mark is None:
            return False
        schema = self.settings.db_schema
        return self._db(
            "look for the run's commit mark",
            lambda: state_table.read(session, schema, mark) is not None,
        )

    def _gather_sql(
        self, session: Session, staging: str, part: dict[str, Any], plan: LoadPlan
    ) -> str:
        """Copy one sealed part's rows into the staging table."""
        table, where = self._part_source(session, part)
        return session.insert_sql(staging, table, self.settings.db_schema, plan.names, where)

    def _part_source(self, session: Session, part: dict[str, Any]) -> tuple[str, str | None]:
        """A sealed part's table, and the condition that picks its rows there (None: the
        table is the part's own)."""
        if part.get("attempt") is None:
            return part["table"], None
        return part["table"], session.attempts_in(ATTEMPT, [int(part["attempt"])])

    def _append_directly(self, run: _Run) -> bool:
        """Can an append publish the parts' rows straight from their tables? (An existing
        target, and the parts hold the target's types: nothing staged as text.)"""
        return (
            self.settings.mode == "append"
            and run.target is not None
            and run.plan is not None
            and not run.plan.staged_as_text
        )

    def _in_place(self, tables: list[dict[str, Any]]) -> bool:
        """Can the parts' table be published as it is? (One shared table for every part;
        replace or append; merge reads a staging table.)"""
        return (
            self.settings.mode in ("replace", "append")
            and all(p.get("attempt") is not None for p in tables)
            and len({p["table"] for p in tables}) == 1
        )

    def _adopt_parts(self, run: _Run, tables: list[dict[str, Any]]) -> list[str]:
        """The statements, run first in the publishing transaction, that make the shared
        parts table hold exactly the sealed attempts' rows and then the staging table (no
        copy). An append to an existing table reads those rows straight into the target."""
        session, schema = run.session, self.settings.db_schema
        first = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(tables[0]["arrow_schema"])))
        run.batch_schema = first
        run.plan = self._plan(run, normalize(first.empty_table()).schema)
        run.staging_created = True
        shared = tables[0]["table"]
        sealed = session.attempts_in(ATTEMPT, [int(p["attempt"]) for p in tables])
        if self._append_directly(run):
            run.sources = [(shared, sealed)]
            return []
        return [
            *session.keep_only_steps(shared, schema, ATTEMPT, sealed),
            session.rename_sql(shared, run.staging, schema),
        ]

    async def abort_parts(self, parts: list[dict[str, Any]]) -> None:
        await asyncio.to_thread(self._abort_parts_sync, parts)

    def _abort_parts_sync(self, parts: list[dict[str, Any]]) -> None:
        schema = self.settings.db_schema

        def drop_all(db: Session) -> None:
            for p in parts:
                db.drop(self._part_table(db, p["part"]), schema)
            if db.transactional_ddl:
                for key in {p["part"].split(".", 1)[0] for p in parts}:
                    for table in db.tables_like(self._shared_prefix(db, key), schema):
                        db.drop(table, schema)

        self._with_session("drop the parts' tables", drop_all)

    # -- incremental state: a row of `_hygge_state`, see hygge/sql/state_table.py --------

    def stage_state(self, flow: str, state: dict[str, Any]) -> None:
        if self.run is None:  # a partitioned flow's commit: kept until commit_parts opens
            self._pending_states[self._state_key(flow)] = state
            return
        self._open_run().states[self._state_key(flow)] = state

    async def read_state(self, flow: str) -> dict[str, Any] | None:
        return await asyncio.to_thread(
            self._with_session,
            "read the incremental state",
            lambda db: state_table.read(db, self.settings.db_schema, self._state_key(flow)),
        )

    async def reset_state(self, flow: str) -> bool:
        return await asyncio.to_thread(
            self._with_session,
            "reset the incremental state",
            lambda db: state_table.reset(db, self.settings.db_schema, self._state_key(flow)),
        )

    def _state_key(self, flow: str) -> str:
        """One state row per flow *and* target table: two flows.yml files that reuse a flow
        name for different tables of one schema must never resume from each other's mark."""
        return state_table.key(self.settings.table, flow)

    def _with_session(self, action: str, fn: Callable[[Session], T]) -> T:
        """Run `fn` on a connection of its own (the store may not be open: `hygge state`)."""
        session = connect(self.url, StoreError, f"store '{self.name}'")
        try:
            return self._db(action, lambda: fn(session))
        finally:
            with contextlib.suppress(Exception):
                session.close()

    def _prepare_state(self, run: _Run) -> None:
        """Create the state table; where DDL commits by itself, create a first load's target
        now, so that data and state (or mark) still publish in one transaction (a rename,
        then a mark that failed, would publish the rows again on a retry)."""
        session, s = run.session, self.settings
        state_table.ensure_table(session, s.db_schema)
        if run.target is None and run.staging_created and run.plan is not None:
            key = s.key if s.mode == "merge" else None
            if session.create_target_early(s.table, run.staging, s.db_schema, key):
                run.target = session.columns(s.table, s.db_schema)
                run.plan.add, run.plan.alter = [], []

    def _publish_steps(self, run: _Run) -> list[str]:
        """The statements that publish the staged rows, run in one transaction."""
        s, session, plan = self.settings, run.session, run.plan
        table, staging, schema = s.table, run.staging, s.db_schema
        if not run.staging_created or plan is None:  # nothing was read
            if s.mode == "replace" and run.target:
                return [f"DELETE FROM {session.qualified(table, schema)}"]
            return []
        steps = [session.alter_column_sql(staging, schema, n, t) for n, t in plan.staged_as_text]
        if run.target is None:  # first load: the staging table becomes the target
            steps.append(session.rename_sql(staging, table, schema))
            if s.mode == "merge":
                steps.append(session.add_key_sql(table, schema, s.key or []))
            return steps
        if s.mode == "replace":
            prefix = self._staging_prefix(session)
            old = self._staging_prefix(session, "old") + staging[len(prefix) :]
            with_state = bool(run.states) and plan.matches(run.target)
            return steps + session.replace_steps(
                table, staging, schema, old, plan.names, with_state=with_state
            )
        steps += [session.add_column_sql(table, schema, n, t) for n, t in plan.add]
        steps += [session.alter_column_sql(table, schema, n, t) for n, t in plan.alter]
        if s.mode == "append" and run.sources:  # a partitioned append: the parts' rows
            return steps + [
                session.insert_sql(table, source, schema, plan.names, where)
                for source, where in run.sources
            ]
        if s.mode == "append":
            steps.append(session.insert_sql(table, staging, schema, plan.names))
        else:
            steps.append(session.merge_sql(table, staging, schema, plan.names, s.key or []))
        return steps + session.drop_in_publish(staging, schema)

    def _check_keys(self, run: _Run) -> None:
        """Merge needs one row per key, and no NULL keys: say which key breaks that."""
        key, session, schema = self.settings.key or [], run.session, self.settings.db_schema
        nulls = self._db(
            "check the merge keys", lambda: session.null_key_rows(run.staging, schema, key)
        )
        if nulls:
            raise self._error(
                f"{nulls} row(s) have a NULL key ({', '.join(key)})",
                "merge matches rows on the key; fill or filter NULL keys",
            )
        dup = self._db(
            "check the merge keys", lambda: session.duplicate_key(run.staging, schema, key)
        )
        if dup:
            shown = ", ".join(f"{k}={v!r}" for k, v in zip(key, dup[0], strict=True))
            raise self._error(
                f"duplicate key in the data: ({shown}) appears {dup[1]} times",
                "merge needs one row per key; de-duplicate in the source",
            )

    async def abort(self) -> None:
        await asyncio.to_thread(self._abort_sync)

    def _abort_sync(self) -> None:
        run = self.run
        if run is None:
            return
        if run.loader is not None:
            run.loader.cancel()
            run.loader = None
        if run.staging_created and run.shared_key is not None:
            # A part's attempt in the shared table: what it loaded is not sealed, so the
            # commit deletes it; the table goes with the flow run (abort_parts).
            with contextlib.suppress(Exception):
                run.session.rollback()
            run.staging_created = False
        if run.staging_created:
            schema = self.settings.db_schema
            with contextlib.suppress(Exception):
                run.session.rollback()
            try:
                run.session.drop(run.staging, schema)
            except Exception:  # a dead connection: drop it from a fresh one
                with contextlib.suppress(Exception):  # server down: the next open sweeps it
                    fresh = connect(self.url, StoreError, f"store '{self.name}'")
                    fresh.drop(run.staging, schema)
                    fresh.close()
            run.staging_created = False
        self._close()

    def _close(self) -> None:
        run, self.run = self.run, None
        if run is not None:
            with contextlib.suppress(Exception):
                run.session.close()

    # -- errors -----------------------------------------------------------------------------
    def _error(
        self, message: str, hint: str | None = None, *, transient: bool = False
    ) -> StoreError:
        return StoreError(
            f"store '{self.name}', table {self.where}: {message}", hint=hint, transient=transient
        )

    def _db(self, action: str, fn: Callable[[], T]) -> T:
        """Run a driver call; its failure becomes a StoreError naming the table, no secrets,
        transient when hygge/sql/faults.py says it may heal."""
        try:
            return fn()
        except HyggeError as exc:
            if isinstance(exc, StoreError) and exc.message.startswith(f"store '{self.name}'"):
                raise
            raise self._error(exc.message, exc.hint, transient=exc.transient) from exc
        except Exception as exc:
            url = self.url
            raise StoreError(
                f"store '{self.name}', table {self.where} at {url.where()}: could not "
                f"{action}: {faults.detail(url, exc)}",
                transient=faults.is_transient(exc),
            ) from exc
