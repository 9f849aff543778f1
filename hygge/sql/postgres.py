"""PostgreSQL through ADBC's libpq driver: binary COPY both ways, Arrow-native."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from collections.abc import Iterator
from typing import Any, ClassVar

import pyarrow as pa

from hygge.errors import HomeError, HyggeError
from hygge.sql.base import (
    SYSTEM_SCHEMAS,
    CatalogTable,
    IdentifierLimit,
    Session,
    like_prefix,
    literal,
)
from hygge.sql.load_plan import LoadRules
from hygge.sql.types import (
    JSON,
    NUMERIC_TEXT,
    UUID,
    Column,
    as_extension,
    pg_arrow_type,
    pg_reads_as_text,
    tag,
    uuid_bytes_to_text,
    uuid_text_to_bytes,
)
from hygge.sql.url import SqlUrl

# The driver's batches, in bytes (its default is 16 MB: about 86,000 rows of lineitem). A
# 50,000-row flow batch keeps every driver batch it was cut from alive until it is written,
# so big ones pinned 100-200 MB of the driver's memory: PostgreSQL -> parquet on lineitem
# SF1 peaked at 382 MB (median of 6, up to 434) with 16 MB, 315 MB (up to 334) with 4 MB, in
# the same time (interleaved, with one queued batch per reader, hygge/sql/page_readers.py).
BATCH_HINT_BYTES = 4 << 20


class PostgresSql(Session):
    """PostgreSQL's SQL, for any connection to it (ADBC here, or SQLAlchemy with a named
    driver): a schema check in the catalog, MERGE on 15+, numerics staged as text."""

    dialect = "postgresql"
    transactional_ddl = True
    identifier_limit = IdentifierLimit(63, "bytes")  # NAMEDATALEN - 1; longer ones are cut
    rules = LoadRules("postgresql", numeric_staged_as_text=True, label="PostgreSQL")
    _has_merge: bool | None = None

    def schema_exists(self, schema: str) -> bool:
        found = self.query(f"SELECT 1 FROM pg_namespace WHERE nspname = {literal(schema)}")
        self.rollback()
        return bool(found)

    def create_shared_steps(
        self, table: str, schema: str | None, names: list[str], types: list[str]
    ) -> list[str]:
        # CREATE TABLE IF NOT EXISTS alone can still fail on a race (a unique violation in
        # the catalog): an advisory lock on the name serializes the creators.
        create = self.create_table_sql(table, schema, names, types)
        return [
            f"SELECT pg_advisory_xact_lock(hashtext({literal(table)}))",
            create.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1),
        ]

    def keep_only_steps(self, table: str, schema: str | None, column: str, where: str) -> list[str]:
        name = self.qualified(table, schema)
        return [
            # A writer that hangs (not dead: its connection would be gone) fails the commit
            # after 5 minutes, rather than holding it forever.
            "SET LOCAL lock_timeout = '300s'",
            # every COPY into it has ended (committed or not) once this is granted, so the
            # DELETE below sees every row that will ever be in the table
            f"LOCK TABLE {name} IN ACCESS EXCLUSIVE MODE",
            f"DELETE FROM {name} WHERE NOT ({where})",
            f"ALTER TABLE {name} DROP COLUMN {self.quote(column)}",  # catalog only: no rewrite
        ]

    def timestamp_literal(self, value: dt.datetime) -> str:
        text = value.isoformat(sep=" ")  # a zoned value keeps its offset: TIMESTAMPTZ compares
        return f"TIMESTAMPTZ '{text}'" if value.tzinfo else f"TIMESTAMP '{text}'"

    def has_merge(self) -> bool:
        """PostgreSQL 15+ upserts with MERGE; older ones with INSERT ... ON CONFLICT."""
        if self._has_merge is None:
            version = self.query("SELECT current_setting('server_version_num')")[0][0]
            self.rollback()
            self._has_merge = int(version) >= 150000
        return self._has_merge

    def merge_needs_unique_key(self) -> bool:
        return not self.has_merge()  # MERGE matches on any columns

    def merge_sql(
        self, target: str, staging: str, schema: str | None, names: list[str], key: list[str]
    ) -> str:
        if not self.has_merge():
            return super().merge_sql(target, staging, schema, names, key)
        q = self.quote
        others = [n for n in names if n not in key]
        on = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in key)
        update = (
            " WHEN MATCHED THEN UPDATE SET " + ", ".join(f"{q(n)} = s.{q(n)}" for n in others)
            if others
            else ""
        )
        cols = ", ".join(q(n) for n in names)
        values = ", ".join(f"s.{q(n)}" for n in names)
        return (
            f"MERGE INTO {self.qualified(target, schema)} AS t "
            f"USING {self.qualified(staging, schema)} AS s ON {on}{update} "
            f"WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({values})"
        )


class PostgresSession(PostgresSql):
    """One ADBC connection; numerics are read as text and parsed by Arrow."""

    def __init__(self, url: SqlUrl) -> None:
        super().__init__(url)
        import adbc_driver_postgresql.dbapi as adbc

        self.conn = adbc.connect(url.libpq())
        self.cur = self.conn.cursor()

    def execute(self, sql: str) -> None:
        self.cur.execute(sql)

    # ADBC opens a transaction after every commit and rollback, so SET TRANSACTION right
    # after a rollback is the first statement of a fresh one, as PostgreSQL requires.
    snapshot_note: ClassVar[str] = ""  # shares one: every partition reads the same snapshot

    def page_ranges(
        self, table: str, schema: str | None, count: int, smallest: int = 0
    ) -> list[str]:
        """`ctid` ranges (a TID range scan from PostgreSQL 14; before it each reader would
        scan the whole table, so none) of a table or materialized view (a view has no ctid).
        The last range is open: pages added before the snapshot are read too."""
        found = self.query(
            "SELECT current_setting('server_version_num')::int >= 140000, c.relkind IN "
            "('r', 'm'), pg_relation_size(c.oid), current_setting('block_size')::int "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = "
            f"{literal(table)} AND n.nspname = "
            f"{literal(schema) if schema else 'current_schema()'}"
        )
        self.rollback()
        if count < 2 or not found or not (found[0][0] and found[0][1]):
            return []
        size, block = int(found[0][2]), int(found[0][3])
        if size < smallest:
            return []
        pages = size // block
        starts = [pages * i // count for i in range(count)]
        ranges = [
            f"ctid >= '({low},0)'::tid AND ctid < '({high},0)'::tid"
            for low, high in itertools.pairwise(starts)
        ]
        return [*ranges, f"ctid >= '({starts[-1]},0)'::tid"]

    def export_snapshot(self) -> str | None:
        self.rollback()
        self.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return str(self.query("SELECT pg_export_snapshot()")[0][0])

    def import_snapshot(self, snapshot: str) -> None:
        self.rollback()
        self.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        try:
            self.execute(f"SET TRANSACTION SNAPSHOT {literal(snapshot)}")
        except Exception as exc:
            raise HomeError(
                f"the snapshot {snapshot} this partitioned read was planned in is gone (the "
                "process that planned it stopped, or held it longer than allowed); the "
                "partitions could not all read the same data",
                hint="run the flow again; nothing of this run is published",
            ) from exc

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        self.cur.execute(sql)
        return list(self.cur.fetchall())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.cur.close()
        super().close()

    def default_schema(self) -> str:
        value = str(self.query("SELECT current_schema()")[0][0])
        self.rollback()
        return value

    def catalog(self, schemas: list[str] | None) -> list[CatalogTable]:
        """From pg_class: partitions are left out (their parent reads them), materialized
        views count as views, foreign tables as tables."""
        where = (
            f"n.nspname IN ({', '.join(literal(s) for s in schemas)})"
            if schemas
            else f"n.nspname NOT IN ({', '.join(literal(s) for s in sorted(SYSTEM_SCHEMAS))}) "
            "AND n.nspname NOT LIKE 'pg\\_%'"
        )
        rows = self.query(
            "SELECT n.nspname, c.relname, c.relkind IN ('v', 'm'), "
            "coalesce((SELECT array_to_string(array_agg(a.attname::text ORDER BY a.attnum), "
            "chr(1)) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 "
            "AND NOT a.attisdropped), '') "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition AND {where}"
        )
        self.rollback()
        return [
            CatalogTable(schema, name, bool(view), tuple(c for c in cols.split("\x01") if c))
            for schema, name, view, cols in rows
        ]

    def columns(self, table: str, schema: str | None) -> list[Column] | None:
        nsp = literal(schema) if schema else "current_schema()"
        rows = self.query(
            "SELECT a.attname, t.typname, a.atttypmod, format_type(a.atttypid, a.atttypmod) "
            "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid "
            f"WHERE n.nspname = {nsp} AND c.relname = {literal(table)} "
            "AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
            "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
        )
        self.rollback()  # leave no transaction open between statements
        if not rows:
            return None
        out = []
        for name, typname, typmod, formatted in rows:
            limit = typmod - 4 if typname in ("varchar", "bpchar") and typmod > 4 else None
            out.append(
                Column(
                    name,
                    pg_arrow_type(typname, typmod),
                    formatted,
                    limit,
                    as_text=pg_reads_as_text(typname),
                )
            )
        return out

    def estimate_rows(self, table: str, schema: str | None) -> int | None:
        # reltuples: the planner's estimate, kept by VACUUM/ANALYZE; -1 (never analyzed) or 0
        # (often the same, on a fresh table) is no estimate.
        nsp = literal(schema) if schema else "current_schema()"
        rows = self.query(
            "SELECT c.reltuples::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = "
            f"c.relnamespace WHERE n.nspname = {nsp} AND c.relname = {literal(table)}"
        )
        self.rollback()
        return int(rows[0][0]) if rows and rows[0][0] and rows[0][0] > 0 else None

    def select_list(self, columns: list[Column]) -> str:
        # numerics as text: PostgreSQL prints them as fast as it sends them in binary, and
        # Arrow parses text into decimals several times faster than the driver decodes them
        return ", ".join(
            f"{self.quote(c.name)}::text AS {self.quote(c.name)}"
            if pa.types.is_decimal(c.type) or c.as_text
            else self.quote(c.name)
            for c in columns
        )

    def stream(self, sql: str, batch_size: int, known: list[Column] | None) -> Iterator[pa.Table]:
        decimals = {c.name: c.type for c in known or [] if pa.types.is_decimal(c.type)}
        cur = self.conn.cursor()
        read_all = False
        try:
            cur.adbc_statement.set_options(
                **{"adbc.postgresql.batch_size_hint_bytes": str(BATCH_HINT_BYTES)}
            )
            cur.execute(sql)
            reader = cur.fetch_record_batch()
            for batch in reader:
                yield _pg_fix(pa.Table.from_batches([batch]), decimals)
            read_all = True
        finally:
            if not read_all:  # else ending the transaction waits for every row still to come
                with contextlib.suppress(Exception):
                    cur.adbc_cancel()
            cur.close()
            with contextlib.suppress(Exception):
                self.conn.rollback()

    def load(self, table: str, schema: str | None, data: pa.Table) -> None:
        for i, field in enumerate(data.schema):
            if tag(field.type) == "uuid":
                data = data.set_column(i, field.name, uuid_text_to_bytes(data.column(i)))
        self.cur.adbc_ingest(table, data, mode="append", db_schema_name=schema)
        self.conn.commit()

    def claim(self, name: str) -> bool:
        got = self.query(f"SELECT pg_try_advisory_lock(hashtext({literal(name)}))")[0][0]
        self.commit()
        return bool(got)

    def unclaim(self, name: str) -> None:
        self.query(f"SELECT pg_advisory_unlock(hashtext({literal(name)}))")
        self.commit()

    def tables_like(self, prefix: str, schema: str | None) -> list[str]:
        nsp = literal(schema) if schema else "current_schema()"
        rows = self.query(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE n.nspname = {nsp} AND c.relkind = 'r' AND c.relname LIKE {like_prefix(prefix)}"
        )
        self.rollback()
        return [r[0] for r in rows]

    def unique_keys(self, table: str, schema: str | None) -> list[set[str]]:
        nsp = literal(schema) if schema else "current_schema()"
        rows = self.query(
            "SELECT i.indexrelid, a.attname FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey) "
            f"WHERE i.indisunique AND n.nspname = {nsp} AND c.relname = {literal(table)}"
        )
        self.rollback()
        keys: dict[Any, set[str]] = {}
        for index, column in rows:
            keys.setdefault(index, set()).add(column)
        return list(keys.values())


def _pg_fix(table: pa.Table, decimals: dict[str, pa.DataType]) -> pa.Table:
    """ADBC's text-carried types as hygge's: numerics as exact decimals, UUIDs as text."""
    for i, field in enumerate(table.schema):
        meta = field.metadata or {}
        pgtype = meta.get(b"POSTGRESQL:type", b"").decode()
        column = table.column(i)
        if field.name in decimals and pgtype == "text":  # read as text, see select_list()
            new = column.cast(decimals[field.name])
        elif pgtype == "numeric":
            typmod = int(meta.get(b"POSTGRESQL:typmod", b"-1"))
            target = pg_arrow_type("numeric", typmod)
            storage = pa.chunked_array(
                [c.storage if isinstance(c, pa.ExtensionArray) else c for c in column.chunks],
                type=pa.string(),
            )
            if target == NUMERIC_TEXT:
                new = as_extension(storage, NUMERIC_TEXT)
            else:
                new = storage.cast(target)
        elif tag(field.type) == "uuid":
            new = pa.chunked_array([uuid_bytes_to_text(c) for c in column.chunks], type=UUID)
        elif tag(field.type) == "json":
            new = as_extension(column, JSON) if field.type != JSON else column
        elif pa.types.is_timestamp(field.type) or pa.types.is_date32(field.type):
            _refuse_infinity(field, column)
            continue
        elif getattr(field.type, "vendor_name", None) == "PostgreSQL":  # wire bytes only
            raise HyggeError(
                f"column '{field.name}': PostgreSQL type {field.type.type_name} arrives only in "
                "its binary wire encoding",
                hint=f'select it as text in the query: "{field.name}"::text',
            )
        else:
            continue
        table = table.set_column(i, pa.field(field.name, new.type), new)
    return table.replace_schema_metadata(None)


# PostgreSQL's `infinity` and `-infinity` have no Arrow value: ADBC hands over the server's
# sentinel (int64 / int32 min and max) shifted from 2000-01-01 to 1970-01-01, which wraps round
# to a date near year 290,000 BC (5.8 million BC for a date). PostgreSQL's earliest finite
# value is 4713 BC, so anything before it is one of those two; the exact sentinels say which.
_PG_EPOCH_US, _PG_EPOCH_DAYS = 946_684_800_000_000, 10_957
_EARLIEST_US, _EARLIEST_DAYS = -210_866_803_200_000_000, -2_440_588  # 4713-11-24 BC
_INFINITE = {
    "us": {-(2**63) + _PG_EPOCH_US - 1: "infinity", -(2**63) + _PG_EPOCH_US: "-infinity"},
    "day": {-(2**31) + _PG_EPOCH_DAYS - 1: "infinity", -(2**31) + _PG_EPOCH_DAYS: "-infinity"},
}


def _refuse_infinity(field: pa.Field, column: pa.ChunkedArray) -> None:
    """A silent change of 'infinity' into a real (absurd) date is refused, naming the value."""
    import pyarrow.compute as pc

    date = pa.types.is_date32(field.type)
    numbers = column.cast(pa.int32() if date else pa.int64())
    earliest = pc.min(numbers).as_py()
    if earliest is None or earliest >= (_EARLIEST_DAYS if date else _EARLIEST_US):
        return
    sentinels = _INFINITE["day" if date else "us"]
    found = [v for k, v in sentinels.items() if pc.any(pc.equal(numbers, k)).as_py()]
    value = " and ".join(f"'{v}'" for v in found) or "'infinity' or '-infinity'"
    kind = "date" if date else "timestamp"
    raise HomeError(
        f"column '{field.name}' holds {value}, which a {kind} outside PostgreSQL has no "
        "value for; nothing was written",
        hint=f'map it in a query, e.g. CASE WHEN isfinite("{field.name}") THEN '
        f'"{field.name}" END AS "{field.name}" (NULL), or a date of your choosing',
    )
