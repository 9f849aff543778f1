"""Destinations of data. Importing this package registers the built-in stores (SQL lazily)."""

from hygge import registry
from hygge.contract import Store, StoreSettings
from hygge.stores.csv import CsvStore
from hygge.stores.parquet import ParquetStore

registry.register_lazy("store", "sql", "hygge.stores.sql:SQLStore")  # imports SQL drivers
registry.register_lazy("store", "delta", "hygge.stores.delta:DeltaStore")  # deltalake ([cloud])
# A Fabric mirrored database's landing zone (docs/fabric.md).
registry.register_lazy("store", "open_mirroring", "hygge.stores.open_mirroring:OpenMirroringStore")

__all__ = ["CsvStore", "ParquetStore", "Store", "StoreSettings"]
