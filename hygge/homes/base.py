"""The Home contract: an async iterator of polars DataFrames, sized by `batch_size`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

import polars as pl
from pydantic import Field

from hygge import registry
from hygge.connector import Connector, ConnectorSettings, default_type_name

DEFAULT_BATCH_SIZE = 100_000


class HomeSettings(ConnectorSettings):
    """Settings every home understands."""

    batch_size: int = Field(DEFAULT_BATCH_SIZE, gt=0, description="Rows per batch.")


class Home(Connector):
    """A source of data. Subclass it and implement `read_batches`.

    A subclass is usable from YAML by its `type_name` (default: the class name without
    "Home", snake_cased), with its settings validated by its nested `Settings` model.
    """

    kind: ClassVar[str] = "home"
    Settings: ClassVar[type[HomeSettings]] = HomeSettings

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("abstract", False):
            return  # a shared base for concrete connectors, not usable from YAML itself
        if "type_name" not in cls.__dict__:
            cls.type_name = default_type_name(cls.__name__, "Home")
        registry.register("home", cls.type_name, cls)

    @property
    def batch_size(self) -> int:
        return self.settings.batch_size

    # -- incremental loads: a home that can resume declares `supports_incremental` ----------
    supports_incremental: ClassVar[bool] = False

    def incremental_definition(self) -> dict[str, Any]:
        """What the saved state depends on (e.g. the cursor column). A saved state made under
        another definition is refused, so a changed flow never resumes from a wrong mark."""
        return {"type": self.type_name}

    def resume(self, state: dict[str, Any] | None) -> None:
        """Read only what is new since `state` (None: everything) on the next read."""
        raise NotImplementedError(f"{type(self).__name__} does not support incremental loads")

    def checkpoint(self) -> dict[str, Any]:
        """The state after the last read: committed with the data it covers."""
        raise NotImplementedError(f"{type(self).__name__} does not support incremental loads")

    async def estimate_rows(self) -> int | None:
        """How many rows the next read will yield, if that is known or cheap to estimate
        (file footers, sizes, a catalog's statistics), for a progress bar; None if not.
        Called after `resume()`, so an incremental read estimates only what is new."""
        return None

    async def read_batches(self) -> AsyncIterator[pl.DataFrame]:
        """Yield the data as DataFrames of at most `batch_size` rows."""
        raise NotImplementedError(f"{type(self).__name__} must implement read_batches()")
        yield  # pragma: no cover  (makes this an async generator)
