"""The load plan (hygge/sql/load_plan.py) is pure: every rule checked without a database."""

from __future__ import annotations

import pyarrow as pa
import pytest

from hygge.sql.alchemy import SqliteSession
from hygge.sql.load_plan import LoadPlan, PlanRefused, check_merge_target, plan_load
from hygge.sql.mysql import MySqlSession
from hygge.sql.postgres import PostgresSession
from hygge.sql.types import NUMERIC_TEXT, Column

PG, MYSQL, SQLITE = PostgresSession.rules, MySqlSession.rules, SqliteSession.rules


def plan(target, schema, rules=PG, mode="append", policy="evolve", key=None) -> LoadPlan:
    return plan_load(target, pa.schema(schema), rules, mode=mode, schema_policy=policy, key=key)


def test_a_new_table_is_created_from_the_data_with_nothing_to_alter():
    p = plan(None, [("id", pa.int64()), ("name", pa.large_string()), ("n", pa.int8())])
    assert p.names == ["id", "name", "n"]
    assert p.ddl == ["BIGINT", "TEXT", "SMALLINT"]
    assert p.staging_ddl == p.ddl
    assert [c.type for c in p.columns] == [pa.int64(), pa.large_string(), pa.int16()]
    assert p.add == [] and p.alter == []


def test_an_existing_column_that_fits_keeps_the_targets_type():
    existing = Column("id", pa.int64(), "bigint")
    p = plan([existing], [("id", pa.int32())])
    assert p.columns[0] is existing and p.ddl == ["bigint"]
    assert p.matches([existing])
    assert not p.matches([Column("id", pa.int64(), "bigint")])  # same type, staged differently


def test_append_adds_new_columns_and_alters_changed_types():
    target = [Column("id", pa.int32(), "integer"), Column("v", pa.int32(), "integer")]
    p = plan(target, [("id", pa.int32()), ("v", pa.large_string()), ("extra", pa.float64())])
    assert p.alter == [("v", "TEXT")]
    assert p.add == [("extra", "DOUBLE PRECISION")]


def test_replace_changes_nothing_in_place():
    target = [Column("v", pa.int32(), "integer")]
    p = plan(target, [("v", pa.large_string()), ("extra", pa.bool_())], mode="replace")
    assert p.add == [] and p.alter == [] and p.ddl == ["TEXT", "BOOLEAN"]


def test_freeze_refuses_a_type_change_naming_the_column():
    with pytest.raises(PlanRefused, match="column 'v' is integer in the target") as err:
        plan([Column("v", pa.int32(), "integer")], [("v", pa.large_string())], policy="freeze")
    assert "schema_policy: evolve" in (err.value.hint or "")


def test_sqlite_refuses_a_type_change_and_allows_new_columns():
    with pytest.raises(PlanRefused, match="SQLite cannot change a column's type"):
        plan([Column("v", pa.int64(), "INTEGER")], [("v", pa.large_string())], SQLITE)
    p = plan([Column("v", pa.int64(), "INTEGER")], [("v", pa.int64()), ("w", pa.bool_())], SQLITE)
    assert p.add == [("w", "BOOLEAN")]


def test_merge_needs_its_key_in_the_data_and_in_the_target():
    with pytest.raises(PlanRefused, match=r"key column\(s\) id not in the data"):
        plan(None, [("name", pa.large_string())], mode="merge", key=["id"])
    with pytest.raises(PlanRefused, match=r"key column\(s\) id not in the target table"):
        check_merge_target([Column("name", pa.large_string(), "text")], ["id"])
    check_merge_target([Column("id", pa.int64(), "bigint")], ["id"])


def test_mysql_key_text_is_bounded_and_hygge_type_comments_are_kept():
    p = plan(None, [("k", pa.large_string()), ("b", pa.large_binary())], MYSQL, "merge",
             key=["k", "b"])  # fmt: skip
    assert p.ddl == ["VARCHAR(255)", "VARBINARY(255)"]
    assert [c.max_length for c in p.columns] == [255, 255]
    zoned = Column("at", pa.timestamp("us", "UTC"), "datetime(6)")
    p = plan([zoned], [("at", pa.timestamp("us", "UTC"))], MYSQL)
    assert p.ddl == ["DATETIME(6) COMMENT 'hygge:timestamptz'"]


def test_postgres_stages_wide_numerics_as_text_and_casts_them_when_publishing():
    p = plan(None, [("n", NUMERIC_TEXT), ("d", pa.decimal128(10, 2))])
    assert p.ddl == ["NUMERIC", "NUMERIC(10,2)"]
    assert p.staging_ddl == ["TEXT", "NUMERIC(10,2)"]
    assert p.staged_as_text == [("n", "NUMERIC")]
    assert plan(None, [("n", NUMERIC_TEXT)], MYSQL).staged_as_text == []
