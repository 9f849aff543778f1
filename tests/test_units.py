"""Fast unit tests of the pure parts: the plan of waves, `${VAR}` interpolation, connection
URLs and their masking, and the Arrow <-> SQL type mapping. No service, no file."""

from __future__ import annotations

import decimal

import pyarrow as pa
import pytest

from hygge.errors import ConfigError, HyggeError, StoreError
from hygge.interpolate import UndefinedVariable, interpolate
from hygge.plan import find_cycle, waves
from hygge.secrets import mask_url
from hygge.sql import mysql_arrow, types
from hygge.sql.url import parse_url


# -- plan: depends_on as waves --------------------------------------------------------------
def test_waves_group_flows_after_their_dependencies():
    graph = {"c": ["a", "b"], "a": [], "b": ["a"], "d": []}
    assert waves(graph) == [["a", "d"], ["b"], ["c"]]


def test_dependencies_outside_the_selection_count_as_done():
    assert waves({"b": ["a"], "c": ["b"]}) == [["b"], ["c"]]


def test_a_cycle_is_found_with_its_path_and_refused_by_waves():
    graph = {"a": ["b"], "b": ["c"], "c": ["a"], "d": []}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": [], "b": ["a"]}) is None
    assert find_cycle({"a": ["a"]}) == ["a", "a"]
    with pytest.raises(ValueError, match="cycle"):
        waves(graph)


# -- interpolation ----------------------------------------------------------------------------
def test_variables_defaults_and_literal_dollars():
    env = {"HOST": "db", "EMPTY": ""}
    assert interpolate("${HOST}:${PORT:-5432}", env) == "db:5432"
    assert interpolate("${EMPTY:-fallback}", env) == "fallback"  # empty counts as unset
    assert interpolate("${EMPTY}", env) == ""  # set but empty, no default: empty
    assert interpolate("cost: $$5 and $${HOST}", env) == "cost: $5 and ${HOST}"
    assert interpolate("$HOST stays", env) == "$HOST stays"  # only the braced form


def test_interpolation_walks_nested_values_and_names_the_missing_key():
    value = {"a": ["x", {"b": "${HOST}"}], "n": 3, "t": True}
    assert interpolate(value, {"HOST": "h"}) == {"a": ["x", {"b": "h"}], "n": 3, "t": True}
    with pytest.raises(UndefinedVariable) as raised:
        interpolate(value, {})
    assert raised.value.name == "HOST" and raised.value.path == ("a", 1, "b")


# -- connection URLs and masking -------------------------------------------------------------
def test_urls_parse_dialect_driver_and_defaults():
    u = parse_url("postgresql+psycopg://app:p%40ss@db.internal/sales", "store 's'")
    assert (u.dialect, u.driver, u.host, u.port, u.database) == (
        "postgresql",
        "psycopg",
        "db.internal",
        5432,
        "sales",
    )
    assert u.user == "app" and u.password == "p@ss"
    assert parse_url("mariadb://root@127.0.0.1:3307/test", "x").dialect == "mysql"
    assert parse_url("mariadb://root@127.0.0.1:3307/test", "x").port == 3307
    lite = parse_url("sqlite:////tmp/x.db", "x")
    assert (lite.dialect, lite.database, lite.where()) == ("sqlite", "/tmp/x.db", "file /tmp/x.db")


def test_bad_urls_are_config_errors_that_never_show_the_password(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(ConfigError, match="DATABASE_URL is not set"):
        parse_url(None, "home 'h'")
    with pytest.raises(ConfigError) as raised:
        parse_url("postgresql://u:hunter2@h:port/db", "home 'h'")
    assert "not a number" in str(raised.value) and "hunter2" not in str(raised.value)
    with pytest.raises(ConfigError) as raised:
        parse_url("u:hunter2@h/db", "home 'h'")
    assert "must be a URL" in str(raised.value)


def test_scrub_masks_the_password_however_a_driver_quotes_it():
    u = parse_url("postgresql://app:s3cr%3At@h/db", "x")
    assert u.masked == "postgresql://app:***@h/db"
    assert u.scrub("FATAL: password 's3cr:t' rejected") == "FATAL: password '***' rejected"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://u:secret@h/db", "postgresql://u:***@h/db"),
        ("two: mysql://a:x@h1/d and pg://b:y@h2/e", "two: mysql://a:***@h1/d and pg://b:***@h2/e"),
        ("no user pw: redis://:pw@h:6379/0", "no user pw: redis://:***@h:6379/0"),
        (
            "postgresql://h/db?user=u&password=secret&x=1",
            "postgresql://h/db?user=u&password=***&x=1",
        ),
        ("nothing secret: postgresql://u@h/db", "nothing secret: postgresql://u@h/db"),
    ],
)
def test_mask_url(text: str, masked: str):
    assert mask_url(text) == masked


def test_masking_is_idempotent_and_never_leaves_the_secret():
    text = "at postgresql://u:top-secret@h/db?token=tok123 and more"
    once = mask_url(text)
    assert "top-secret" not in once and "tok123" not in once and mask_url(once) == once


# -- Arrow <-> SQL types ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("arrow", "dialect", "expected"),
    [
        (pa.int16(), "postgresql", "SMALLINT"),
        (pa.int64(), "mysql", "BIGINT"),
        (pa.decimal128(12, 2), "postgresql", "NUMERIC(12,2)"),
        (pa.decimal128(12, 2), "mysql", "DECIMAL(12,2)"),
        (pa.decimal128(12, 2), "sqlite", "DECIMAL_TEXT(12,2)"),
        (types.UUID, "postgresql", "UUID"),
        (types.JSON, "postgresql", "JSONB"),
    ],
)
def test_ddl_of_arrow_types(arrow: pa.DataType, dialect: str, expected: str):
    assert types.ddl(arrow, dialect, "c") == expected


def test_every_timestamp_flavour_keeps_its_time_zone_meaning():
    for dialect in ("postgresql", "mysql", "sqlite"):
        naive = types.ddl(pa.timestamp("us"), dialect, "c")
        aware = types.ddl(pa.timestamp("us", "Europe/Oslo"), dialect, "c")
        assert naive != aware, dialect
    assert types.canonical(pa.timestamp("ns", "Europe/Oslo"), "postgresql") == pa.timestamp(
        "us", "UTC"
    )


def test_a_decimal_wider_than_mysql_allows_names_the_column():
    with pytest.raises(StoreError, match=r"column 'big'.*DECIMAL\(65\)"):
        types.ddl(pa.decimal256(70, 2), "mysql", "big")


def test_mysql_decimals_read_as_scaled_integers_are_exact_or_an_error():
    """The MariaDB fast path reads decimal(p<=18, s) as CAST(x * 10^s AS SIGNED): the plan
    says so, the integers become the decimals, and a value with more than p digits (a
    saturated CAST) is an error naming the column, never a wrong value."""
    price = types.Column("price", pa.decimal128(15, 2), "decimal(15,2)")
    wide = types.Column("wide", pa.decimal128(30, 2), "decimal(30,2)")
    whole = types.Column("whole", pa.decimal128(18, 0), "decimal(18,0) unsigned")
    read = mysql_arrow.plan("SELECT * FROM t", [price, wide, whole], lambda n: f"`{n}`")
    assert isinstance(read, mysql_arrow.Plan)
    assert "CAST(`price` * 100 AS SIGNED) AS `price`" in read.sql
    assert "CAST(`wide` AS CHAR) AS `wide`" in read.sql
    assert "CAST(`whole` AS SIGNED) AS `whole`" in read.sql
    assert "hygge_fast" in read.sql  # `*`: not hygge's own read of a table
    # one SELECT of plain columns (hygge's own read of a table) takes the casts in its own
    # select list, under aliases no clause names (WHERE and ORDER BY read stored values)
    columns = [price, wide]
    own = "SELECT `price`, `wide` FROM `t` WHERE `price` >= 1.50"
    for tail in ("", " ORDER BY `wide`"):
        read = mysql_arrow.plan(own + tail, columns, lambda n: f"`{n}`")
        assert isinstance(read, mysql_arrow.Plan)
        assert read.sql == (
            "SELECT CAST(`price` * 100 AS SIGNED) AS `hygge_cast_0`, CAST(`wide` AS CHAR) AS "
            f"`hygge_cast_1` FROM `t` WHERE `price` >= 1.50{tail}"
        )
    union = f"{own} UNION SELECT `price`, `wide` FROM `u`"
    read = mysql_arrow.plan(union, columns, lambda n: f"`{n}`")
    assert isinstance(read, mysql_arrow.Plan) and "hygge_fast" in read.sql
    ordered = "SELECT `price`, `wide` FROM `t` UNION SELECT 1, 2 ORDER BY 1"
    assert "ORDER BY" in str(mysql_arrow.plan(ordered, columns, lambda n: f"`{n}`"))
    commented = "SELECT price * 1 AS price, wide -- it's (\nFROM t ORDER BY price"
    assert "ORDER BY" in str(mysql_arrow.plan(commented, columns, lambda n: f"`{n}`"))
    # an ORDER BY in a window, a subquery or a quoted text is not the result's order: the
    # fast path reads such a query through the derived table
    for unordered in (
        "SELECT ROW_NUMBER() OVER (ORDER BY x) AS price, x AS wide FROM t",
        f"SELECT * FROM ({ordered}) AS hygge_src WHERE `price` >= 1",
        "SELECT price, 'it\\'s ORDER BY' AS wide FROM t",
    ):
        read = mysql_arrow.plan(unordered, columns, lambda n: f"`{n}`")
        assert isinstance(read, mysql_arrow.Plan) and "hygge_fast" in read.sql, unordered
    got = mysql_arrow.convert(pa.array([-99999999999999, None, 1], pa.int64()), price)
    assert got.type == pa.decimal128(15, 2)
    assert got.to_pylist() == [decimal.Decimal("-999999999999.99"), None, decimal.Decimal("0.01")]
    with pytest.raises(HyggeError, match=r"column 'price'.*more than 15 digits"):
        mysql_arrow.convert(pa.array([2**63 - 1], pa.int64()), price)


def test_postgres_catalog_types_map_to_exact_arrow_types():
    assert types.pg_arrow_type("int8", -1) == pa.int64()
    assert types.pg_arrow_type("timestamptz", -1) == pa.timestamp("us", "UTC")
    assert types.pg_arrow_type("numeric", ((10 << 16) | 3) + 4) == pa.decimal128(10, 3)
    assert types.pg_arrow_type("numeric", -1) == types.NUMERIC_TEXT  # unconstrained: as text
    assert types.decimal_type(50, 2) == types.NUMERIC_TEXT  # wider than decimal128


def test_fits_allows_only_widenings_that_keep_values():
    assert types.fits(pa.int32(), pa.int64()) and types.fits(pa.int64(), pa.decimal128(20, 0))
    assert types.fits(pa.date32(), pa.timestamp("us"))
    assert not types.fits(pa.large_string(), pa.int64())
    assert not types.fits(pa.timestamp("us"), pa.timestamp("us", "UTC"))


def test_cast_column_is_exact_or_names_the_column():
    ints = pa.chunked_array([[1, 2, 40_000]])
    with pytest.raises(StoreError, match="column 'small'"):
        types.cast_column(ints, pa.int16(), "small")
    assert types.cast_column(ints, pa.int32(), "c").to_pylist() == [1, 2, 40_000]
    prices = pa.chunked_array([[decimal.Decimal("1.25")]], pa.decimal128(5, 2))
    with pytest.raises(StoreError, match="column 'p'"):
        types.cast_column(prices, pa.decimal128(5, 1), "p")  # would round
    with pytest.raises(StoreError, match=r"column 'code'.*5-character"):
        types.cast_column(pa.chunked_array([["abcdef"]]), pa.large_string(), "code", 5)
    with pytest.raises(StoreError, match="column 'f'"):
        types.cast_column(pa.chunked_array([[float("nan")]]), pa.int64(), "f")


def test_identifier_limits_come_from_the_sql_session() -> None:
    """Each dialect's session states how long a name it keeps whole, before connecting."""
    from hygge.sql.connect import session_class

    def problem(url: str, name: str) -> str | None:
        return session_class(parse_url(url, "store")).identifier_problem(name)

    for url in ("postgresql://u@h/db", "postgresql+pg8000://u@h/db"):  # ADBC or SQLAlchemy
        assert problem(url, "t" * 63) is None
        assert problem(url, "é" * 32) == "is 64 bytes, longer than postgresql keeps (63)"
    assert problem("mysql://u@h/db", "é" * 64) is None
    assert problem("mysql://u@h/db", "t" * 65) == "is 65 characters, longer than mysql keeps (64)"
    assert problem("sqlite:///x.db", "t" * 500) is None  # SQLite has no limit
