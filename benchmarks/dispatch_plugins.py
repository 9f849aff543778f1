"""Trivial connectors for the dispatch benchmark (loaded by workers via HYGGE_PLUGINS):
a home of one row and a store that keeps nothing, so a flow costs only hygge's own overhead."""

from __future__ import annotations

from collections.abc import AsyncIterator

import polars as pl

from hygge.contract import Home, Store


class OneRowHome(Home):
    type_name = "one_row"

    async def read_batches(self) -> AsyncIterator[pl.DataFrame]:
        yield pl.DataFrame({"x": [1]})


class NullStore(Store):
    type_name = "discard"

    async def write(self, df: pl.DataFrame) -> None:
        """Keep nothing."""
