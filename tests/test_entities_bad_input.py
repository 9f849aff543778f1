"""Bad entity definitions: a clear message naming the file, line, flow and entity, exit 1,
no traceback, and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.entity_support import fill, pg_schema
from tests.test_entities_files import drop


def refused(root: Path, body: str, *expected: str) -> str:
    """Run `validate` and `run` on `body`: both must refuse with every `expected` text."""
    (root / "flows.yml").write_text(body)
    for command in ("validate", "run"):
        result = run_cli(command, "flows.yml", cwd=root)
        assert result.returncode == 2, result.stdout  # flows.yml is wrong: a usage error
        assert "Traceback" not in result.stderr
        for text in expected:
            assert text in result.stderr, result.stderr
    assert not (root / "lake").exists()  # nothing written
    return result.stderr


def crm(url: str, tables: str, store: str = "lake/{entity}", extra: str = "") -> str:
    """A definition `crm` over `tables` (line 4: home, line 5: store, then `extra`)."""
    home = f'{{type: sql, connection: "{url}", tables: ["{tables}"]}}'
    return f"\nflows:\n  crm:\n    home: {home}\n    store: {store}\n{extra}"


@pytest.fixture
def schema(postgres_url: str):
    with pg_schema(postgres_url) as (pg, name):
        fill(pg, name, "orders", 0, 5)
        fill(pg, name, "order_items", 1, 5)
        yield pg, name


def test_a_pattern_matching_nothing_lists_what_exists(
    tmp_path: Path, postgres_url: str, schema
) -> None:
    _, name = schema
    refused(
        tmp_path,
        crm(postgres_url, f"{name}.ordrs*"),
        "flows.yml:4: flow 'crm' -> home.tables:",
        f"tables pattern '{name}.ordrs*' matches no table",
        f"tables in schema {name}: order_items, orders",
    )


def test_a_pattern_matching_only_views_says_so(tmp_path: Path, postgres_url: str, schema) -> None:
    pg, name = schema
    pg.run(f"CREATE VIEW {name}.v_orders AS SELECT * FROM {name}.orders")
    refused(
        tmp_path,
        crm(postgres_url, f"{name}.v_*"),
        "matches only views; set `include_views: true`",
    )


def test_a_store_without_entity_for_several_entities(
    tmp_path: Path, postgres_url: str, schema
) -> None:
    _, name = schema
    refused(
        tmp_path,
        crm(postgres_url, f"{name}.*", "lake/all"),
        "flows.yml:5: flow 'crm' -> store:",
        "2 entities (order_items, orders) would all write to the same store",
        "{entity}",
    )


def test_two_entities_with_one_target(tmp_path: Path, postgres_url: str, schema) -> None:
    pg, name = schema
    pg.run(f'CREATE TABLE {name}."Orders" (id int)')
    refused(
        tmp_path,
        crm(postgres_url, f"{name}.*"),
        "flow 'crm' -> store: entities 'Orders' and 'orders' would both write to",
    )


def test_an_override_naming_no_entity_suggests_one(
    tmp_path: Path, postgres_url: str, schema
) -> None:
    _, name = schema
    refused(
        tmp_path,
        crm(postgres_url, f"{name}.*", extra="    entities:\n      order: {columns: [id]}\n"),
        "flows.yml:7: flow 'crm' -> entities.order: no entity named 'order' was found",
        "did you mean 'orders'?",
    )


def test_an_override_key_of_both_home_and_store_must_be_nested(
    tmp_path: Path, postgres_url: str, schema
) -> None:
    _, name = schema
    refused(
        tmp_path,
        crm(
            postgres_url,
            f"{name}.*",
            f'{{type: sql, connection: "{postgres_url}", table: "copy_{{entity}}"}}',
            extra="    entities:\n      orders: {schema: elsewhere}\n",
        ),
        "entities.orders.schema: 'schema' is a setting of both the home and the store",
        "nest it",
    )


def test_a_file_path_matching_no_entity_lists_the_folder(tmp_path: Path) -> None:
    drop(tmp_path / "drops/orders", "a.txt", 1)  # a.txt.csv: not *.json
    refused(
        tmp_path,
        """
flows:
  drops:
    home: {type: ndjson, path: "drops/{entity}/*.json"}
    store: lake/{entity}
""",
        "flow 'drops' -> home.path: path",
        "matches no entity",
        "holds: orders",
    )


def test_entities_without_a_home_that_finds_them(tmp_path: Path) -> None:
    drop(tmp_path, "one", 1)
    refused(
        tmp_path,
        """
flows:
  plain:
    home: one.csv
    store: lake/{entity}
    entities: {x: {}}
""",
        "`entities:` needs a home that finds them",
    )


def test_a_table_name_too_long_for_the_target_database(tmp_path: Path, postgres_url: str) -> None:
    drop(tmp_path / "drops" / ("x" * 60), "a", 1)
    drop(tmp_path / "drops/short", "a", 1)
    refused(
        tmp_path,
        f"""
flows:
  drops:
    home: "drops/{{entity}}/*.csv"
    store: {{type: sql, connection: "{postgres_url}", table: "raw_{{entity}}"}}
""",
        f"entity '{'x' * 60}': table name 'raw_{'x' * 60}' is 64 bytes, longer than postgresql "
        "keeps (63)",
    )


def test_mysql_counts_a_table_name_in_characters(tmp_path: Path, mysql_url: str) -> None:
    """MySQL/MariaDB keep 64 characters (its SQL session says so): `rå_` + 61 letters are 64
    characters (65 bytes, too long for PostgreSQL) and pass; + 62 letters are refused."""
    drop(tmp_path / "drops" / ("b" * 62), "a", 1)
    drop(tmp_path / "drops" / ("a" * 61), "a", 1)
    stderr = refused(
        tmp_path,
        f"""
flows:
  drops:
    home: "drops/{{entity}}/*.csv"
    store: {{type: sql, connection: "{mysql_url}", table: "rå_{{entity}}"}}
""",
        f"entity '{'b' * 62}': table name 'rå_{'b' * 62}' is 65 characters, longer than "
        "mysql keeps (64)",
    )
    assert "a" * 61 not in stderr  # checked first (sorted): 64 characters are kept whole


def test_two_schemas_with_one_table_name(tmp_path: Path, postgres_url: str) -> None:
    with pg_schema(postgres_url) as (pg, first), pg_schema(postgres_url) as (_, second):
        for schema in (first, second):
            fill(pg, schema, "orders", 0, 2)
        body = crm(postgres_url, f"{first}.*").replace(
            f'"{first}.*"]', f'"{first}.*", "{second}.*"]'
        )
        refused(
            tmp_path,
            body,
            "two entities are both named 'orders': table {}.orders and table {}.orders".format(
                *sorted((first, second))  # discovery lists tables sorted by schema
            ),
        )


def test_two_definitions_making_one_flow_name_are_refused_naming_both(tmp_path: Path) -> None:
    """`crm` with entity `a.b` and `crm.a` with entity `b` both make `crm.a.b`: one of the
    two was dropped silently (validate reported one flow)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for folder, name in (("d1", "a.b"), ("d2", "b")):
        (tmp_path / folder).mkdir()
        pq.write_table(pa.table({"id": [1]}), tmp_path / folder / f"{name}.parquet")
    body = (
        "flows:\n"
        "  crm:\n"
        '    home: "d1/{entity}.parquet"\n'
        '    store: "lake/one/{entity}"\n'
        "  crm.a:\n"
        '    home: "d2/{entity}.parquet"\n'
        '    store: "lake/two/{entity}"\n'
    )
    refused(
        tmp_path,
        body,
        "flows.yml:5: flow 'crm.a'",
        "entity 'b' makes a flow named 'crm.a.b'",
        "entity 'a.b' of definition 'crm'",
    )
