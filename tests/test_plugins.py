"""Third-party homes and stores: by subclassing, and through entry points, usable from YAML."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import duckdb

from hygge import Coordinator, registry
from tests.checks import scan


def test_entry_point_plugin_is_found_by_type_name(tmp_path: Path, monkeypatch):
    site = tmp_path / "site"
    (site / "acme_hygge-1.0.dist-info").mkdir(parents=True)
    (site / "acme_hygge-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: acme-hygge\nVersion: 1.0\n"
    )
    (site / "acme_hygge-1.0.dist-info" / "entry_points.txt").write_text(
        "[hygge.homes]\nacme_numbers = acme_plugin:Numbers\n"
    )
    (site / "acme_plugin.py").write_text(
        textwrap.dedent(
            """
            import polars as pl
            from hygge import Home, HomeSettings

            class Numbers(Home):
                type_name = "acme_numbers"

                class Settings(HomeSettings):
                    count: int

                async def read_batches(self):
                    n = self.settings.count
                    for start in range(0, n, self.batch_size):
                        stop = min(n, start + self.batch_size)
                        yield pl.DataFrame({"n": range(start, stop)})
            """
        )
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(registry, "_entry_points_loaded", set())
    (tmp_path / "flows.yml").write_text(
        "flows:\n  nums:\n    home: {type: acme_numbers, count: 2500, batch_size: 1000}\n"
        "    store: out\n"
    )
    try:
        with registry.registered("home", "acme_numbers"):
            result = Coordinator(tmp_path / "flows.yml").run()
    finally:
        sys.modules.pop("acme_plugin", None)
    assert result.ok and result.results["nums"].rows == 2500
    assert registry.lookup("home", "acme_numbers") is None  # removed again
    got = duckdb.sql(f"select count(*), count(distinct n), sum(n) from {scan(tmp_path / 'out')}")
    assert got.fetchall() == [(2500, 2500, sum(range(2500)))]
