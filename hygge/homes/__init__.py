"""Sources of data. Importing this package registers the built-in file homes."""

from hygge.homes.base import Home, HomeSettings
from hygge.homes.csv import CsvHome
from hygge.homes.ndjson import NdjsonHome
from hygge.homes.parquet import ParquetHome

__all__ = ["CsvHome", "Home", "HomeSettings", "NdjsonHome", "ParquetHome"]
