"""Destinations of data. Importing this package registers the built-in file stores."""

from hygge.stores.base import Store, StoreSettings
from hygge.stores.csv import CsvStore
from hygge.stores.parquet import ParquetStore

__all__ = ["CsvStore", "ParquetStore", "Store", "StoreSettings"]
