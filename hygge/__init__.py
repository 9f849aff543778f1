"""hygge: cozy, reliable data movement from Homes to Stores, batch by batch.

from hygge import Flow, ParquetHome, ParquetStore
Flow(ParquetHome("users", path="users.parquet"), ParquetStore("users", path="lake/users")).run()
"""

from hygge.coordinator import Coordinator, RunResult
from hygge.errors import (
    ConfigError,
    DependencyFailed,
    FlowError,
    HomeError,
    HyggeError,
    StoreError,
    TransientError,
)
from hygge.flow import Flow, FlowResult
from hygge.homes import CsvHome, Home, HomeSettings, NdjsonHome, ParquetHome
from hygge.progress import Progress
from hygge.stores import CsvStore, ParquetStore, Store, StoreSettings

__version__ = "0.1.0"

# Connectors whose modules import database drivers: loaded on first use, not by `import hygge`.
_LAZY = {
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
    "DependencyFailed",
    "Flow",
    "FlowError",
    "FlowResult",
    "Home",
    "HomeError",
    "HomeSettings",
    "HyggeError",
    "NdjsonHome",
    "ParquetHome",
    "ParquetStore",
    "Progress",
    "RunResult",
    "SQLHome",
    "SQLStore",
    "Store",
    "StoreError",
    "StoreSettings",
    "TransientError",
]
