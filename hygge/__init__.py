"""hygge: cozy, reliable data movement from Homes to Stores, batch by batch.

from hygge import Flow, ParquetHome, ParquetStore
Flow(ParquetHome("users", path="users.parquet"), ParquetStore("users", path="lake/users")).run()

The contract a custom Home or Store implements is documented in `hygge.contract`.
"""

from typing import TYPE_CHECKING

from hygge.allocator import prefer_jemalloc

prefer_jemalloc()  # before anything below imports pyarrow

from hygge.contract import (  # noqa: E402
    Home,
    HomeSettings,
    IncrementalHome,
    MultiPartStore,
    SplittableHome,
    StatefulStore,
    Store,
    StoreSettings,
)
from hygge.errors import (  # noqa: E402
    ConfigError,
    FlowError,
    HomeError,
    HyggeError,
    StoreError,
    TransientError,
)
from hygge.homes import CsvHome, NdjsonHome, ParquetHome  # noqa: E402
from hygge.progress import FlowState  # noqa: E402
from hygge.report import FlowReport  # noqa: E402
from hygge.run.move import Flow  # noqa: E402
from hygge.stores import CsvStore, ParquetStore  # noqa: E402

if TYPE_CHECKING:  # what the lazy names below are, for type checkers
    from hygge.coordinator import Coordinator, RunResult
    from hygge.homes.sql import SQLHome
    from hygge.stores.sql import SQLStore

__version__ = "0.1.0"

# Loaded on first use, not by `import hygge`: the SQL connectors import database drivers, and
# `python -m hygge.coordinator` must find its module not yet imported.
_LAZY = {
    "Coordinator": "hygge.coordinator",
    "RunResult": "hygge.coordinator",
    "SQLHome": "hygge.homes.sql",
    "SQLStore": "hygge.stores.sql",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hygge' has no attribute {name!r}")


__all__ = [
    "ConfigError",
    "Coordinator",
    "CsvHome",
    "CsvStore",
    "Flow",
    "FlowError",
    "FlowReport",
    "FlowState",
    "Home",
    "HomeError",
    "HomeSettings",
    "HyggeError",
    "IncrementalHome",
    "MultiPartStore",
    "NdjsonHome",
    "ParquetHome",
    "ParquetStore",
    "RunResult",
    "SQLHome",
    "SQLStore",
    "SplittableHome",
    "StatefulStore",
    "Store",
    "StoreError",
    "StoreSettings",
    "TransientError",
]
