"""Kept so `from hygge.stores.base import Store` keeps working: the contract is
hygge/contract.py."""

from hygge.contract import MultiPartStore, StatefulStore, Store, StoreSettings

__all__ = ["MultiPartStore", "StatefulStore", "Store", "StoreSettings"]
