"""Homes and stores by type name (`type: parquet`).

Subclasses of Home and Store register themselves when their class is defined; third-party
packages register through the `hygge.homes` / `hygge.stores` entry-point groups, loaded the
first time a name is looked up and not found. Modules named in the HYGGE_PLUGINS environment
variable (comma-separated) are imported at that moment too: the simplest way to make a custom
Home or Store known to `hygge run`, `hygge enqueue` and every worker alike.
"""

from __future__ import annotations

import difflib
import importlib
import os
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
    load_plugins()
    for ep in entry_points(group=f"hygge.{kind}s"):
        cls = ep.load()
        register(kind, ep.name, cls)


def load_plugins() -> list[str]:
    """Import the modules listed in HYGGE_PLUGINS so their Homes and Stores register."""
    names = [n.strip() for n in os.environ.get("HYGGE_PLUGINS", "").split(",") if n.strip()]
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            from hygge.errors import ConfigError

            raise ConfigError(
                f"HYGGE_PLUGINS names '{name}', which cannot be imported: {exc}",
                hint="check the module name and that it is on PYTHONPATH",
            ) from None
    return names


def _import_target(target: str) -> type:
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
