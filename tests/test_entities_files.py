"""File entities: one per folder (or file) matching `{entity}` in a home's path, on local
folders; outputs read back with DuckDB and compared by row count and checksum."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from hygge import config
from hygge.entities.names import path_component
from tests.checks import fingerprint
from tests.conftest import run_cli
from tests.entity_support import mysql_database


def drop(folder: Path, name: str, rows: int, start: int = 0) -> Path:
    """A CSV file of `rows` rows under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", "label", "amount"])
        out.writerows([i, f"row {i}", i * 0.5] for i in range(start, start + rows))
    return path


def project(tmp_path: Path, body: str) -> Path:
    (tmp_path / "flows.yml").write_text(body)
    return tmp_path


FOLDERS = """
flows:
  drops:
    home: {type: csv, path: "drops/{entity}/*.csv"}
    store: {type: parquet, path: "lake/{entity}"}
"""


def test_one_entity_per_folder_each_exact(tmp_path: Path) -> None:
    drop(tmp_path / "drops/orders", "a", 30)
    drop(tmp_path / "drops/orders", "b", 20, start=30)
    drop(tmp_path / "drops/refunds", "a", 7)
    (tmp_path / "drops/empty").mkdir()  # no CSV: skipped, and said so
    drop(tmp_path / "drops/.hidden", "a", 3)  # hidden: never an entity
    drop(tmp_path / "drops/_meta", "a", 3)
    root = project(tmp_path, FOLDERS)

    checked = run_cli("validate", "flows.yml", cwd=root)
    assert checked.returncode == 0, checked.stderr
    assert "drops: 2 entities in" in checked.stdout
    assert "drops.orders  folder" in checked.stdout and "drops.refunds  folder" in checked.stdout
    assert "empty: no files match" in checked.stdout and "skipped" in checked.stdout

    done = run_cli("run", "flows.yml", cwd=root)
    assert done.returncode == 0, done.stderr
    for name in ("orders", "refunds"):
        source = fingerprint(f"{tmp_path}/drops/{name}/*.csv", "id, label, amount")
        assert fingerprint(tmp_path / "lake" / name, "id, label, amount") == source
    assert sorted(p.name for p in (tmp_path / "lake").iterdir()) == ["_hygge", "orders", "refunds"]

    drop(tmp_path / "drops/returns", "a", 4)  # a feed added later is picked up
    (tmp_path / "drops/refunds/a.csv").unlink()
    (tmp_path / "drops/refunds").rmdir()  # a feed gone is reported
    again = run_cli("run", "flows.yml", cwd=root)
    assert again.returncode == 0, again.stderr
    assert "drops.returns" in again.stdout
    assert "warning: drops: entity 'refunds' was in the last run" in again.stdout
    assert fingerprint(tmp_path / "lake/returns")[0] == 4


def test_one_entity_per_file_into_sql_tables(tmp_path: Path, mysql_url: str) -> None:
    drop(tmp_path / "in", "feed_alpha", 11)
    drop(tmp_path / "in", "feed_beta", 5)
    drop(tmp_path / "in", "other", 5)  # does not match feed_{entity}.csv
    with mysql_database(mysql_url) as (my, url):
        root = project(
            tmp_path,
            f"""
flows:
  feeds:
    home: "in/feed_{{entity}}.csv"
    store: {{type: sql, connection: "{url}", table: "raw_{{entity}}", mode: append}}
""",
        )
        for expected in (1, 2):  # append: the second run adds the same rows again
            done = run_cli("run", "flows.yml", cwd=root)
            assert done.returncode == 0, done.stderr
            assert my.run("SELECT count(*) FROM raw_alpha")[0][0] == 11 * expected
            assert my.run("SELECT count(*) FROM raw_beta")[0][0] == 5 * expected
        assert {r[0] for r in my.run("SHOW TABLES")} == {"raw_alpha", "raw_beta", "_hygge_state"}
        (tmp_path / "in/feed_beta.csv").unlink()  # the list kept in _hygge_state says so
        gone = run_cli("run", "flows.yml", cwd=root)
        assert gone.returncode == 0, gone.stderr
        assert "warning: feeds: entity 'beta' was in the last run" in gone.stdout
        assert my.run("SELECT count(*) FROM raw_beta")[0][0] == 10  # left as it was


def test_flow_selection_and_dependencies_by_definition(tmp_path: Path) -> None:
    drop(tmp_path / "drops/a", "x", 3)
    drop(tmp_path / "drops/b", "x", 4)
    drop(tmp_path / "solo", "x", 2)
    loaded = config.parse(
        FOLDERS
        + """
  after:
    home: solo/x.csv
    store: lake_after
    depends_on: [drops]
""",
        base_dir=tmp_path,
        env={},
    )
    assert list(loaded.flows) == ["drops.a", "drops.b", "after"]
    assert loaded.select(["drops"]) == ["drops.a", "drops.b"]
    assert loaded.select(["drops.b", "after"]) == ["drops.b", "after"]
    assert loaded.flows["after"].options.depends_on == ["drops.a", "drops.b"]
    assert loaded.waves() == [["drops.a", "drops.b"], ["after"]]
    only = run_cli("run", "flows.yml", "--flow", "drops.b", cwd=project(tmp_path, FOLDERS))
    assert only.returncode == 0, only.stderr
    assert not (tmp_path / "lake/a").exists() and fingerprint(tmp_path / "lake/b")[0] == 4


@pytest.mark.parametrize(
    ("name", "escaped"),
    [
        ("orders", "orders"),
        ("_audit", "%5Faudit"),
        ("..", "%2E."),
        (".x", "%2Ex"),
        ("a%b", "a%25b"),
        ("a*b?", "a%2Ab%3F"),
        ("Straße 1", "Straße 1"),
    ],
)
def test_entity_names_as_path_components(name: str, escaped: str) -> None:
    assert path_component(name) == escaped
    assert "/" not in path_component(name)


def test_per_entity_settings_go_to_the_home_the_store_or_the_flow(tmp_path: Path) -> None:
    drop(tmp_path / "drops/orders", "x", 3)
    drop(tmp_path / "drops/refunds", "x", 3)
    loaded = config.parse(
        FOLDERS
        + """
    options: {retries: 1}
    entities:
      orders: {columns: [id], max_rows_per_file: 10, retries: 7,
               store: {compression: snappy}, options: {queue_size: 2}}
""",
        base_dir=tmp_path,
        env={},
    )
    orders, refunds = loaded.flows["drops.orders"], loaded.flows["drops.refunds"]
    assert orders.home.settings.columns == ["id"] and refunds.home.settings.columns is None
    assert orders.store.settings.max_rows_per_file == 10
    assert orders.store.settings.compression == "snappy"
    assert (orders.options.retries, orders.options.queue_size) == (7, 2)
    assert (refunds.options.retries, refunds.options.queue_size) == (1, 4)
    assert orders.store.settings.path == str(tmp_path / "lake/orders")
    assert orders.raw["home"] == {"type": "csv", "path": "drops/orders/*.csv", "columns": ["id"]}
