"""Sources of data. Importing this package registers the built-in homes (SQL lazily)."""

from hygge import registry
from hygge.contract import Home, HomeSettings
from hygge.homes.csv import CsvHome
from hygge.homes.ndjson import NdjsonHome
from hygge.homes.parquet import ParquetHome

registry.register_lazy("home", "sql", "hygge.homes.sql:SQLHome")  # imports SQL drivers

__all__ = ["CsvHome", "Home", "HomeSettings", "NdjsonHome", "ParquetHome"]
