"""A SQL table out: staged in a side table, published in one transaction.

Every batch is bulk-loaded into `_hygge_stage_<table>_<run>` (PostgreSQL: binary COPY through
ADBC; MySQL/MariaDB: LOAD DATA LOCAL INFILE; others: SQLAlchemy executemany). `commit()` then
publishes all of it at once:
- replace: the staging table is swapped in for the target (readers see old or new, never half);
- append: INSERT INTO target SELECT FROM staging;
- merge: upsert on `key` from staging (PostgreSQL MERGE, MySQL ON DUPLICATE KEY UPDATE,
  SQLite ON CONFLICT).
`abort()` drops the staging table, so the target is untouched by a failed run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

import polars as pl
import pyarrow as pa
from pydantic import ConfigDict, Field, field_validator, model_validator

from hygge.contract import StatefulStore, Store, StoreSettings
from hygge.errors import HyggeError, StoreError
from hygge.sql import state as sql_state
from hygge.sql.base import Session, literal
from hygge.sql.connect import connect
from hygge.sql.loaders import Loader, loader_for
from hygge.sql.types import Column, canonical, cast_column, ddl, family, fits, normalize, tag
from hygge.sql.url import SqlUrl, parse_url

T = TypeVar("T")
log = logging.getLogger("hygge.stores.sql")
URL_SCHEMES = ("postgresql", "postgres", "pgsql", "mysql", "mariadb", "sqlite")


class SQLStoreSettings(StoreSettings):
    model_config = ConfigDict(populate_by_name=True)

    mode: Literal["replace", "append", "merge"] = "replace"  # type: ignore[assignment]
    connection: str | None = Field(
        None, description="SQLAlchemy URL (default: $DATABASE_URL), e.g. postgresql://u@h/db."
    )
    table: str = Field(description="Target table (created from the data when missing).")
    db_schema: str | None = Field(None, alias="schema", description="Schema of `table`.")
    key: list[str] | None = Field(None, description="Key columns for mode: merge.")
    streams: int = Field(
        2, ge=1, le=16, description="PostgreSQL: parallel COPY connections while loading."
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
class _Plan:
    """How this run's data lands: staging columns, and what the target needs changed."""

    names: list[str]
    columns: list[Column]  # staging column types (the target's where it has the column)
    ddl: list[str]
    add: list[tuple[str, str]] = field(default_factory=list)  # new columns (name, ddl)
    alter: list[tuple[str, str]] = field(default_factory=list)  # type changes (name, ddl)
    # PostgreSQL numerics without a decimal128 form: staged as text, cast when publishing
    text_numeric: list[tuple[str, str]] = field(default_factory=list)


class SQLStore(StatefulStore, Store[SQLStoreSettings]):
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
        self.session: Session | None = None
        self.target: list[Column] | None = None
        self.plan: _Plan | None = None
        self.staging: str | None = None
        self.staging_created = False
        self.loader: Loader | None = None
        self._states: dict[str, dict[str, Any]] = {}

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

    def _qt(self, name: str) -> str:
        assert self.session is not None
        return self.session.qualified(name, self.settings.db_schema)

    def _q(self, name: str) -> str:
        assert self.session is not None
        return self.session.quote(name)

    # -- lifecycle --------------------------------------------------------------------------
    async def check(self) -> None:
        await self.open()
        await self.abort()

    async def open(self) -> None:
        await asyncio.to_thread(self._open_sync)

    def _open_sync(self) -> None:
        self.plan, self.staging_created, self.loader = None, False, None
        self._states = {}
        self.session = connect(self.url, StoreError, f"store '{self.name}'")
        try:
            self._inspect_target()
        except BaseException:
            self._close()  # the flow does not abort a store that failed to open
            raise

    def _inspect_target(self) -> None:
        s = self.settings
        self.target = self._db(
            "read the target's columns", lambda: self.session.columns(s.table, s.db_schema)
        )
        limit = self.session.max_identifier
        base = re.sub(r"\W", "_", s.table)[: limit - len("_hygge_stage__") - len(self.run_id)]
        self.staging = f"_hygge_stage_{base}_{self.run_id}"
        self._db("clean up after runs that died", lambda: self._sweep(f"_hygge_stage_{base}_"))
        if s.db_schema and self.session.dialect == "postgresql":
            found = self._db(
                "check the schema",
                lambda: self.session.query(
                    f"SELECT 1 FROM pg_namespace WHERE nspname = {literal(s.db_schema)}"
                ),
            )
            self.session.rollback()
            if not found:
                raise self._error(
                    f"schema '{s.db_schema}' does not exist", "create it, or fix `schema`"
                )
        if s.mode == "merge" and self.target is not None:
            self._check_merge_target()

    def _sweep(self, prefix: str) -> None:
        """Claim this run's staging table, and drop the ones whose run died (their claim is
        free: it ends with the connection that held it). Live runs' tables are left alone."""
        session, schema = self.session, self.settings.db_schema
        assert session is not None and self.staging is not None
        if not session.claim(self.staging):
            return  # no named locks here (SQLite): a dead run's table stays, harmlessly
        for name in session.tables_like(prefix, schema):
            if name != self.staging and session.claim(name):
                log.warning("dropping %s, left by a run that did not finish", name)
                _drop(session, name, schema)
                session.unclaim(name)

    def _check_merge_target(self) -> None:
        s = self.settings
        assert self.target is not None and s.key and self.session is not None
        names = [c.name for c in self.target]
        missing = [k for k in s.key if k not in names]
        if missing:
            raise self._error(
                f"key column(s) {', '.join(missing)} not in the target table",
                f"the table has: {', '.join(names)}",
            )
        if self._uses_pg_merge():  # MERGE needs no unique index
            return
        keys = self._db(
            "read the target's indexes", lambda: self.session.unique_keys(s.table, s.db_schema)
        )
        if set(s.key) not in keys:
            cols = ", ".join(self._q(k) for k in s.key)
            fix = (
                f"ALTER TABLE {self._qt(s.table)} ADD UNIQUE ({cols})"
                if self.session.dialect == "mysql"
                else f"CREATE UNIQUE INDEX {self._q('ux_' + s.table)} "
                f"ON {self._qt(s.table)} ({cols})"
            )
            raise self._error(
                f"merge on ({', '.join(s.key)}) needs a primary key or unique index on "
                "exactly those columns",
                f"add one: {fix}",
            )

    def _uses_pg_merge(self) -> bool:
        """PostgreSQL 15+ upserts with MERGE; older ones with INSERT ... ON CONFLICT."""
        session = self.session
        if session is None or session.dialect != "postgresql":
            return False
        if not hasattr(self, "_pg_merge"):
            version = session.query("SELECT current_setting('server_version_num')")[0][0]
            session.rollback()
            self._pg_merge = int(version) >= 150000
        return self._pg_merge

    async def write(self, df: pl.DataFrame) -> None:
        await asyncio.to_thread(self._write_sync, df.to_arrow())

    def _write_sync(self, table: pa.Table) -> None:
        assert self.session is not None and self.staging is not None
        table = normalize(table)
        if self.plan is None:
            self.plan = self._make_plan(table.schema)
            self._create_staging()
        if table.column_names != self.plan.names:
            raise self._error(
                f"a batch has columns {table.column_names}, the first had {self.plan.names}",
                "every batch of a flow must have the same columns",
            )
        arrays = [
            cast_column(table.column(i), col.type, col.name, col.max_length)
            for i, col in enumerate(self.plan.columns)
        ]
        data = pa.Table.from_arrays(arrays, names=self.plan.names)
        self._db("load a batch into the staging table", lambda: self.loader.put(data))

    def _make_plan(self, schema: pa.Schema) -> _Plan:
        s = self.settings
        dialect = self.session.dialect  # type: ignore[union-attr]
        if s.mode == "merge":
            missing = [k for k in s.key or [] if k not in schema.names]
            if missing:
                raise self._error(
                    f"key column(s) {', '.join(missing)} not in the data",
                    f"the data has: {', '.join(schema.names)}",
                )
        existing = {c.name: c for c in self.target or []}
        plan = _Plan(list(schema.names), [], [])
        for f in schema:
            wanted = ddl(f.type, dialect, f.name)
            limit = None
            if (
                dialect == "mysql"
                and f.name in (s.key or [])
                and family(f.type) in ("text", "binary")
            ):  # MySQL indexes no unbounded TEXT/BLOB: a key column needs a length
                limit = 255
                wanted = "VARCHAR(255)" if family(f.type) == "text" else "VARBINARY(255)"
            col = existing.get(f.name)
            if col is not None and fits(f.type, col.type):
                plan.columns.append(col)
                keep = col.sql_type
                if dialect == "mysql" and (tag(col.type) or family(col.type) == "timestamptz"):
                    keep = ddl(col.type, dialect, f.name)  # keep hygge's type comment
                plan.ddl.append(keep)
                continue
            if col is not None:
                if s.schema_policy == "freeze":
                    raise self._error(
                        f"column '{f.name}' is {col.sql_type} in the target but the data has "
                        f"{f.type}; schema_policy: freeze refuses type changes",
                        "cast the column in the source, or set schema_policy: evolve",
                    )
                if s.mode != "replace":
                    plan.alter.append((f.name, wanted))
            elif self.target is not None and s.mode != "replace":
                plan.add.append((f.name, wanted))
            plan.columns.append(Column(f.name, canonical(f.type, dialect), wanted, limit))
            plan.ddl.append(wanted)
        if plan.alter and dialect == "sqlite":
            raise self._error(
                f"SQLite cannot change a column's type ({plan.alter[0][0]})",
                "cast the column in the source, or use mode: replace",
            )
        return plan

    def _create_staging(self) -> None:
        assert self.plan is not None and self.staging is not None
        ddl = list(self.plan.ddl)
        if self.session.dialect == "postgresql":  # type: ignore[union-attr]
            for i, col in enumerate(self.plan.columns):
                if tag(col.type) == "numeric":  # binary COPY cannot send numeric text
                    self.plan.text_numeric.append((col.name, ddl[i]))
                    ddl[i] = "TEXT"
        cols = ", ".join(f"{self._q(n)} {t}" for n, t in zip(self.plan.names, ddl, strict=True))
        sql = f"CREATE TABLE {self._qt(self.staging)} ({cols})"
        self._db(
            "create the staging table", lambda: (self.session.execute(sql), self.session.commit())
        )
        self.staging_created = True
        self.loader = loader_for(
            self.session, self.staging, self.settings.db_schema, self.settings.streams
        )

    async def staged_rows(self) -> int | None:
        return await asyncio.to_thread(self._staged_rows_sync)

    def _staged_rows_sync(self) -> int:
        if not self.staging_created:
            return 0
        assert self.loader is not None
        self._db("finish loading the staging table", self.loader.finish)
        if self.loader.server_rows is not None:
            return self.loader.server_rows  # the server's own count of rows it took
        n = self._db(
            "count the staged rows",
            lambda: self.session.count(self.staging, self.settings.db_schema),
        )
        self.session.rollback()  # type: ignore[union-attr]
        return n

    async def commit(self) -> None:
        await asyncio.to_thread(self._commit_sync)

    def _commit_sync(self) -> None:
        assert self.session is not None
        s = self.settings
        if self.loader is not None:  # staged_rows() normally did this already
            self._db("finish loading the staging table", self.loader.finish)
            self.loader = None
        if s.mode == "merge" and self.staging_created:
            self._check_keys()
        if self._states:  # incremental: the state row commits in the data's transaction
            self._db("create the state table", self._prepare_state)
        steps = self._publish_steps()
        if self._states:
            steps += sql_state.publish_steps(self.session, s.db_schema, self._states)
        session = self.session

        def publish() -> None:
            session.begin()
            try:
                for sql in steps:
                    session.execute(sql)
                session.commit()
            except BaseException:
                with contextlib.suppress(Exception):
                    session.rollback()
                raise

        self._db(f"publish ({s.mode}) into the target", publish)
        if self.staging_created and (s.mode != "replace" or self._states) and self.target:
            with contextlib.suppress(Exception):  # MySQL: DROP is not transactional
                session.execute(f"DROP TABLE IF EXISTS {self._qt(self.staging)}")
                session.commit()
        self.staging_created = False
        self._close()

    # -- incremental state: a row of `_hygge_state`, see hygge/sql/state.py ----------------

    def stage_state(self, flow: str, state: dict[str, Any]) -> None:
        self._states[flow] = state

    async def read_state(self, flow: str) -> dict[str, Any] | None:
        return await asyncio.to_thread(
            self._with_session,
            "read the incremental state",
            lambda db: sql_state.read(db, self.settings.db_schema, flow),
        )

    async def reset_state(self, flow: str) -> bool:
        return await asyncio.to_thread(
            self._with_session,
            "reset the incremental state",
            lambda db: sql_state.reset(db, self.settings.db_schema, flow),
        )

    def _with_session(self, action: str, fn: Callable[[Session], T]) -> T:
        """Run `fn` on a connection of its own (the store may not be open: `hygge state`)."""
        session = connect(self.url, StoreError, f"store '{self.name}'")
        try:
            return self._db(action, lambda: fn(session))
        finally:
            with contextlib.suppress(Exception):
                session.close()

    def _prepare_state(self) -> None:
        """Create the state table; on MySQL (where DDL commits) turn the data's DDL steps
        into DML so that data and state still publish in one transaction."""
        session, s = self.session, self.settings
        assert session is not None
        sql_state.ensure_table(session, s.db_schema)
        if session.dialect != "mysql" or not self.staging_created:
            return
        if self.target is None:  # first load: create the target now, then INSERT into it
            target, staging = self._qt(s.table), self._qt(self.staging)  # type: ignore[arg-type]
            session.execute(f"CREATE TABLE {target} LIKE {staging}")
            if s.mode == "merge":
                keys = ", ".join(self._q(k) for k in s.key or [])
                session.execute(f"ALTER TABLE {target} ADD PRIMARY KEY ({keys})")
            self.target = session.columns(s.table, s.db_schema)
            self.plan.add, self.plan.alter = [], []  # type: ignore[union-attr]

    def _publish_steps(self) -> list[str]:
        """The statements that publish the staged rows, run in one transaction."""
        s = self.settings
        assert self.session is not None and self.staging is not None
        target, staging = self._qt(s.table), self._qt(self.staging)
        if not self.staging_created:  # nothing was read
            return [f"DELETE FROM {target}"] if s.mode == "replace" and self.target else []
        casts = [
            f"ALTER TABLE {staging} ALTER COLUMN {self._q(n)} TYPE {t} USING {self._q(n)}::{t}"
            for n, t in self.plan.text_numeric  # type: ignore[union-attr]
        ]
        return casts + self._publish_main(target, staging)

    def _publish_main(self, target: str, staging: str) -> list[str]:
        s = self.settings
        dialect = self.session.dialect  # type: ignore[union-attr]
        rename = (
            f"RENAME TABLE {staging} TO {target}"
            if dialect == "mysql"
            else f"ALTER TABLE {staging} RENAME TO {self._q(s.table)}"
        )
        if self.target is None:  # first load: the staging table becomes the target
            steps = [rename]
            if s.mode == "merge":
                keys = ", ".join(self._q(k) for k in s.key or [])
                if dialect != "sqlite":
                    steps.append(f"ALTER TABLE {target} ADD PRIMARY KEY ({keys})")
                else:
                    steps.append(
                        f"CREATE UNIQUE INDEX {self._q('ux_' + s.table + '_hygge')} "
                        f"ON {self._q(s.table)} ({keys})"
                    )
            return steps
        if s.mode == "replace":
            if dialect == "mysql" and self._states and self._same_columns():
                cols = ", ".join(self._q(n) for n in self.plan.names)  # type: ignore[union-attr]
                return [  # InnoDB: DELETE + INSERT commit with the state, unlike RENAME
                    f"DELETE FROM {target}",
                    f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {staging}",
                ]
            if dialect == "mysql":
                old = self._qt(f"_hygge_old_{self.run_id}")
                return [
                    f"RENAME TABLE {target} TO {old}, {staging} TO {target}",
                    f"DROP TABLE {old}",
                ]
            return [f"DROP TABLE {target}", rename]
        steps = [self._add_column(target, n, t) for n, t in self.plan.add]  # type: ignore[union-attr]
        steps += [self._alter_column(target, n, t) for n, t in self.plan.alter]  # type: ignore[union-attr]
        names = self.plan.names  # type: ignore[union-attr]
        cols = ", ".join(self._q(n) for n in names)
        if s.mode == "append":
            steps.append(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {staging}")
        else:
            steps.append(self._merge_sql(target, staging, names, s.key or []))
        if dialect != "mysql":
            steps.append(f"DROP TABLE {staging}")
        return steps

    def _same_columns(self) -> bool:
        """The target has the staged columns, in order, with the types they were staged as."""
        assert self.plan is not None and self.target is not None
        return [c.name for c in self.target] == self.plan.names and all(
            a is b for a, b in zip(self.plan.columns, self.target, strict=True)
        )

    def _add_column(self, target: str, name: str, type_ddl: str) -> str:
        return f"ALTER TABLE {target} ADD COLUMN {self._q(name)} {type_ddl}"

    def _alter_column(self, target: str, name: str, type_ddl: str) -> str:
        if self.session.dialect == "mysql":  # type: ignore[union-attr]
            return f"ALTER TABLE {target} MODIFY COLUMN {self._q(name)} {type_ddl}"
        q = self._q(name)
        return f"ALTER TABLE {target} ALTER COLUMN {q} TYPE {type_ddl} USING {q}::{type_ddl}"

    def _merge_sql(self, target: str, staging: str, names: list[str], key: list[str]) -> str:
        q = self._q
        cols = ", ".join(q(n) for n in names)
        others = [n for n in names if n not in key]
        dialect = self.session.dialect  # type: ignore[union-attr]
        if self._uses_pg_merge():
            on = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in key)
            update = (
                " WHEN MATCHED THEN UPDATE SET " + ", ".join(f"{q(n)} = s.{q(n)}" for n in others)
                if others
                else ""
            )
            values = ", ".join(f"s.{q(n)}" for n in names)
            return (
                f"MERGE INTO {target} AS t USING {staging} AS s ON {on}{update} "
                f"WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({values})"
            )
        if dialect == "mysql":
            update = ", ".join(f"{q(n)} = VALUES({q(n)})" for n in others or key)
            return (
                f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {staging} "
                f"ON DUPLICATE KEY UPDATE {update}"
            )
        keys = ", ".join(q(k) for k in key)
        action = (
            "DO UPDATE SET " + ", ".join(f"{q(n)} = excluded.{q(n)}" for n in others)
            if others
            else "DO NOTHING"
        )
        return (
            f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {staging} WHERE true "
            f"ON CONFLICT ({keys}) {action}"
        )

    def _check_keys(self) -> None:
        """Merge needs one row per key, and no NULL keys: say which key breaks that."""
        key = self.settings.key or []
        keys = ", ".join(self._q(k) for k in key)
        staging = self._qt(self.staging)  # type: ignore[arg-type]
        nulls = " OR ".join(f"{self._q(k)} IS NULL" for k in key)
        rows = self._db(
            "check the merge keys",
            lambda: self.session.query(f"SELECT count(*) FROM {staging} WHERE {nulls}"),
        )
        if rows[0][0]:
            raise self._error(
                f"{rows[0][0]} row(s) have a NULL key ({', '.join(key)})",
                "merge matches rows on the key; fill or filter NULL keys",
            )
        dup = self._db(
            "check the merge keys",
            lambda: self.session.query(
                f"SELECT {keys}, count(*) FROM {staging} GROUP BY {keys} HAVING count(*) > 1 "
                "LIMIT 1"
            ),
        )
        self.session.rollback()  # type: ignore[union-attr]
        if dup:
            shown = ", ".join(f"{k}={v!r}" for k, v in zip(key, dup[0][:-1], strict=True))
            raise self._error(
                f"duplicate key in the data: ({shown}) appears {dup[0][-1]} times",
                "merge needs one row per key; de-duplicate in the source",
            )

    async def abort(self) -> None:
        await asyncio.to_thread(self._abort_sync)

    def _abort_sync(self) -> None:
        if self.session is None:
            return
        if self.loader is not None:
            self.loader.cancel()
            self.loader = None
        if self.staging_created:
            assert self.staging is not None
            with contextlib.suppress(Exception):
                self.session.rollback()
            try:
                _drop(self.session, self.staging, self.settings.db_schema)
            except Exception:  # a dead connection: drop it from a fresh one
                with contextlib.suppress(Exception):
                    fresh = connect(self.url, StoreError, f"store '{self.name}'")
                    _drop(fresh, self.staging, self.settings.db_schema)
                    fresh.close()
            self.staging_created = False
        self._close()

    def _close(self) -> None:
        if self.session is not None:
            with contextlib.suppress(Exception):
                self.session.close()
            self.session = None

    # -- errors -----------------------------------------------------------------------------
    def _error(self, message: str, hint: str | None = None) -> StoreError:
        return StoreError(f"store '{self.name}', table {self.where}: {message}", hint=hint)

    def _db(self, action: str, fn: Callable[[], T]) -> T:
        """Run a driver call; its failure becomes a StoreError naming the table, no secrets."""
        try:
            return fn()
        except HyggeError as exc:
            if isinstance(exc, StoreError) and exc.message.startswith(f"store '{self.name}'"):
                raise
            raise self._error(exc.message, exc.hint) from exc
        except Exception as exc:
            url = self.url
            detail = url.scrub(str(exc).strip()) or type(exc).__name__
            detail = re.sub(r"\s+", " ", detail)[:600]
            transient = bool(
                re.search(
                    r"connection|server closed|gone away|timed? ?out|"
                    r"deadlock|lock wait",
                    detail,
                    re.I,
                )
            )
            raise StoreError(
                f"store '{self.name}', table {self.where} at {url.where()}: could not "
                f"{action}: {detail}",
                transient=transient,
            ) from exc


def _drop(session: Session, table: str, schema: str | None) -> None:
    session.execute(f"DROP TABLE IF EXISTS {session.qualified(table, schema)}")
    session.commit()
