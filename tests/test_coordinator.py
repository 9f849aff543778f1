"""Coordinator: depends_on order, concurrency, failures that stop only their dependants."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import polars as pl

from hygge import Coordinator, Home
from hygge.report import FlowReport
from tests.checks import fingerprint
from tests.helpers import write_flows

running_now: list[int] = [0]
max_running: list[int] = [0]


class SlowHome(Home):
    """Three small batches with pauses, counting how many flows run at once."""

    type_name = "test_slow_home"

    async def read_batches(self) -> AsyncIterator[pl.DataFrame]:
        running_now[0] += 1
        max_running[0] = max(max_running[0], running_now[0])
        try:
            for i in range(3):
                await asyncio.sleep(0.05)
                yield pl.DataFrame({"i": [i]})
        finally:
            running_now[0] -= 1


def test_depends_on_runs_after_its_dependency_committed(tmp_path: Path):
    events: list[FlowReport] = []
    path = write_flows(
        tmp_path,
        """
flows:
  second:
    home: {type: parquet, path: out/first}
    store: out/second
    options: {depends_on: first}
  first:
    home: {type: test_slow_home}
    store: out/first
""",
    )
    result = Coordinator(path, on_progress=events.append).run()
    assert result.ok, result.failed
    order = [(e.flow, e.state) for e in events if e.state in ("running", "success")]
    assert order.index(("first", "success")) < order.index(("second", "running"))
    assert fingerprint(tmp_path / "out" / "second") == fingerprint(tmp_path / "out" / "first")
    assert fingerprint(tmp_path / "out" / "second")[0] == 3


def test_concurrency_limits_flows_at_once(tmp_path: Path):
    flows = "\n".join(
        f"  f{i}: {{home: {{type: test_slow_home}}, store: out/f{i}}}" for i in range(6)
    )
    path = write_flows(tmp_path, f"flows:\n{flows}\n")
    max_running[0] = 0
    assert asyncio.run(Coordinator(path, concurrency=2).start()).ok
    assert max_running[0] == 2
    max_running[0] = 0
    assert Coordinator(path, concurrency=6).run().ok
    assert max_running[0] == 6


def test_failure_skips_dependants_but_not_the_rest(tmp_path: Path):
    path = write_flows(
        tmp_path,
        """
flows:
  broken: {home: nothing.parquet, store: out/broken}
  child: {home: {type: test_slow_home}, store: out/child, depends_on: broken}
  grandchild: {home: {type: test_slow_home}, store: out/gc, depends_on: child}
  other: {home: {type: test_slow_home}, store: out/other}
""",
    )
    result = Coordinator(path).run()
    states = {name: r.state for name, r in result.results.items()}
    assert states == {
        "broken": "failed",
        "child": "skipped",
        "grandchild": "skipped",
        "other": "success",
    }
    assert "input not found" in (result.results["broken"].error or "")
    assert "depends on child" in (result.results["grandchild"].error or "")
    assert not result.ok


def test_selected_flows_only(tmp_path: Path):
    path = write_flows(
        tmp_path,
        "flows:\n  a: {home: {type: test_slow_home}, store: out/a}\n"
        "  b: {home: {type: test_slow_home}, store: out/b, depends_on: a}\n",
    )
    result = Coordinator(path, flows=["b"]).run()
    assert list(result.results) == ["b"] and result.ok
    assert not (tmp_path / "out" / "a").exists()
