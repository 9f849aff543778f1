"""`hygge state`: read or reset the incremental state that stores keep beside the data."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from rich.table import Table

from hygge import config as config_module
from hygge.errors import ConfigError


def _incremental_flows(
    flows_file: str | os.PathLike[str], names: list[str] | None
) -> tuple[Any, list[str]]:
    loaded = config_module.load(flows_file)
    selected = [n for n in loaded.select(names) if loaded.flows[n].options.incremental]
    if names and len(selected) < len(names):
        plain = sorted(set(names) - set(selected))
        raise ConfigError(
            f"not incremental: {', '.join(plain)}",
            file=str(flows_file),
            hint="only flows with `incremental: true` keep state",
        )
    return loaded, selected


def read_states(
    flows_file: str | os.PathLike[str], names: list[str] | None = None
) -> dict[str, dict[str, Any] | None]:
    """The committed state of each selected incremental flow (None: nothing loaded yet)."""
    loaded, selected = _incremental_flows(flows_file, names)
    return {n: asyncio.run(loaded.flows[n].store.build().read_state(n)) for n in selected}


def reset_states(flows_file: str | os.PathLike[str], names: list[str]) -> dict[str, bool]:
    """Forget the state of the named flows; their next run reloads everything. A flow that
    is running is refused: its commit would write the state again, as if never reset."""
    loaded, selected = _incremental_flows(flows_file, names)
    return {n: asyncio.run(_reset(loaded.flows[n].store.build(), n)) for n in selected}


async def _reset(store: Any, flow: str) -> bool:
    async with store.lock(flow):
        return bool(await store.reset_state(flow))


def describe(state: dict[str, Any]) -> str:
    inner = state.get("state", {})
    if "files" in inner:
        return f"{len(inner['files'])} file(s) loaded"
    if "cursor" in inner:
        window = len(inner.get("window", []))
        return f"{inner['cursor']} = {inner.get('mark')} ({window} row(s) in the lag window)"
    return ", ".join(f"{k}={v}" for k, v in inner.items())


def state_table(flows_file: str | os.PathLike[str], names: list[str] | None = None) -> Table:
    table = Table(title="incremental state", title_justify="left")
    for column in ("flow", "committed at", "rows in last run", "high-water mark"):
        table.add_column(column)
    for name, state in read_states(flows_file, names).items():
        if state is None:
            table.add_row(name, "never", "", "nothing loaded yet")
        else:
            table.add_row(
                name, state.get("committed_at", ""), f"{state.get('rows', 0):,}", describe(state)
            )
    return table
