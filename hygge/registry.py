"""Homes and stores by type name (`type: parquet`).

Subclasses of Home and Store register themselves when their class is defined; third-party
packages register through the `hygge.homes` / `hygge.stores` entry-point groups, loaded the
first time a name is looked up and not found.
"""

from __future__ import annotations

import difflib
from importlib.metadata import entry_points
from typing import Any

_registries: dict[str, dict[str, type]] = {"home": {}, "store": {}}
_entry_points_loaded: set[str] = set()

# Built-in connectors that live in modules which import heavy drivers: imported on first use so
# `import hygge` stays light. Maps kind -> type name -> "module:Class".
_LAZY_BUILTINS: dict[str, dict[str, str]] = {"home": {}, "store": {}}


def register(kind: str, type_name: str, cls: type) -> None:
    """Make `cls` usable from YAML as `type: <type_name>` for a home or a store."""
    _registries[kind][type_name] = cls


def register_lazy(kind: str, type_name: str, target: str) -> None:
    """Register a built-in connector by "module:Class" without importing it yet."""
    _LAZY_BUILTINS[kind][type_name] = target


def _load_entry_points(kind: str) -> None:
    if kind in _entry_points_loaded:
        return
    _entry_points_loaded.add(kind)
    for ep in entry_points(group=f"hygge.{kind}s"):
        cls = ep.load()
        register(kind, ep.name, cls)


def _import_target(target: str) -> type:
    import importlib

    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def lookup(kind: str, type_name: str) -> type | None:
    """The class registered for `type_name`, or None."""
    registry = _registries[kind]
    if type_name not in registry and type_name in _LAZY_BUILTINS[kind]:
        register(kind, type_name, _import_target(_LAZY_BUILTINS[kind][type_name]))
    if type_name not in registry:
        _load_entry_points(kind)
    return registry.get(type_name)


def names(kind: str) -> list[str]:
    """Every type name known for `kind`, built-in and plug-in."""
    _load_entry_points(kind)
    return sorted(set(_registries[kind]) | set(_LAZY_BUILTINS[kind]))


def all_classes(kind: str) -> dict[str, Any]:
    """Every registered class for `kind`, importing lazy built-ins."""
    return {name: lookup(kind, name) for name in names(kind)}


def suggest(word: str, choices: list[str]) -> str | None:
    """The nearest valid choice to a misspelt word, for "did you mean ...?" messages."""
    matches = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return matches[0] if matches else None
