"""The Home/Store contract: typed settings, refused type-name clashes, abilities checked at
validate time (by the real CLI, for `validate` and `enqueue` alike)."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import duckdb
import polars as pl
import pytest

from hygge import ConfigError, Flow, Home, HomeSettings, ParquetStore, Store, registry
from hygge.contract import can_resume, keeps_state
from tests.checks import scan
from tests.conftest import ROOT, run_cli


class CountSettings(HomeSettings):
    count: int


def test_settings_given_as_type_argument_are_validated_and_typed(tmp_path: Path) -> None:
    with registry.registered("home", "test_typed_count"):

        class TypedCountHome(Home[CountSettings]):
            type_name = "test_typed_count"

            async def read_batches(self):
                n: int = self.settings.count  # typed: CountSettings, not ConnectorSettings
                for start in range(0, n, self.batch_size):
                    yield pl.DataFrame({"n": range(start, min(n, start + self.batch_size))})

        assert TypedCountHome.Settings is CountSettings
        with pytest.raises(ConfigError, match="count"):
            TypedCountHome("x")  # `count` is required
        result = Flow(
            TypedCountHome("nums", count=2500, batch_size=1000),
            ParquetStore("out", path=str(tmp_path / "out")),
        ).run()
    assert (result.rows, result.batches) == (2500, 3)
    got = duckdb.sql(f"select count(*), sum(n) from {scan(tmp_path / 'out')}").fetchall()
    assert got == [(2500, sum(range(2500)))]
    assert registry.lookup("home", "test_typed_count") is None  # removed on leaving the block


def test_a_plugin_class_named_like_a_builtin_is_refused_naming_both() -> None:
    with pytest.raises(ConfigError) as caught:

        class ParquetStore(Store):  # default type name: parquet, taken by the built-in
            async def write(self, df: pl.DataFrame) -> None: ...

    message = str(caught.value)
    assert "'parquet'" in message
    assert "hygge.stores.parquet.ParquetStore" in message
    assert f"{__name__}.test_a_plugin_class_named_like_a_builtin" in message
    assert registry.lookup("store", "parquet").__module__ == "hygge.stores.parquet"


def test_a_second_type_name_and_a_lazy_builtin_name_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"hygge\.homes\.csv\.CsvHome"):

        class MyCsv(Home):
            type_name = "csv"

    with pytest.raises(ConfigError, match=r"hygge\.stores\.sql\.SQLStore"):

        class MySql(Store):  # the SQL store is registered lazily (not imported yet, maybe)
            type_name = "sql"


def test_the_same_class_defined_again_replaces_itself() -> None:
    with registry.registered("store", "test_again"):
        for _ in range(2):  # the same module and qualified name: a reload, not a clash

            class Again(Store):
                type_name = "test_again"

        assert registry.lookup("store", "test_again") is Again


def test_an_entry_point_clashing_with_a_builtin_is_refused(tmp_path: Path, monkeypatch) -> None:
    site = tmp_path / "site"
    dist = site / "clash_hygge-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: clash-hygge\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[hygge.homes]\nparquet = clash_plugin:Other\n")
    (site / "clash_plugin.py").write_text(
        "from hygge import Home\n\nclass Other(Home):\n    type_name = 'clash_other'\n"
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(registry, "_entry_points_loaded", set())
    try:
        with pytest.raises(ConfigError) as caught:
            registry.names("home")
        assert "clash_plugin.Other" in str(caught.value)
        assert "hygge.homes.parquet.ParquetHome" in str(caught.value)
    finally:
        registry.unregister("home", "clash_other")
        sys.modules.pop("clash_plugin", None)


def test_abilities_of_the_builtins() -> None:
    assert can_resume(registry.lookup("home", "parquet"))
    assert keeps_state(registry.lookup("store", "csv"))
    assert not can_resume(Home) and not keeps_state(Store)


PLAIN_PLUGIN = """
import polars as pl
from hygge import Home, Store

class PlainHome(Home):
    async def read_batches(self):
        yield pl.DataFrame({"n": [1]})

class PlainStore(Store):
    async def write(self, df):
        pass
"""


@pytest.mark.parametrize("command", ["validate", "enqueue"])
@pytest.mark.parametrize(
    ("flow", "line", "expected"),
    [
        (
            "home: {type: plain}\n    store: out\n    incremental: true\n",
            3,
            "home type 'plain' cannot load incrementally",
        ),
        (
            "home: in.parquet\n    store: {type: plain}\n    options: {incremental: true}\n",
            4,
            "store type 'plain' cannot keep incremental state",
        ),
    ],
)
def test_incremental_flow_without_the_abilities_is_refused_at_validate(
    tmp_path: Path, command: str, flow: str, line: int, expected: str
) -> None:
    (tmp_path / "plain_plugin.py").write_text(textwrap.dedent(PLAIN_PLUGIN))
    pl.DataFrame({"n": [1]}).write_parquet(tmp_path / "in.parquet")
    (tmp_path / "flows.yml").write_text("flows:\n  moves:\n    " + flow)
    env = {
        "HYGGE_PLUGINS": "plain_plugin",
        "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}",
        # enqueue must refuse before it talks to a broker: point it at nothing
        "HYGGE_BROKER_URL": "redis://127.0.0.1:1/0",
    }
    proc = run_cli(command, "flows.yml", cwd=tmp_path, env=env)
    assert proc.returncode == 2
    assert f"flows.yml:{line}: flow 'moves'" in proc.stderr
    assert expected in proc.stderr
    assert "valid" not in proc.stdout and "Traceback" not in proc.stderr
    assert "csv" in proc.stderr and "parquet" in proc.stderr  # the valid choices
    assert not (tmp_path / "out").exists()
