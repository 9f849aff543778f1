"""Kept so `from hygge.homes.base import Home` keeps working: the contract is hygge/contract.py."""

from hygge.contract import DEFAULT_BATCH_SIZE, Home, HomeSettings, IncrementalHome

__all__ = ["DEFAULT_BATCH_SIZE", "Home", "HomeSettings", "IncrementalHome"]
