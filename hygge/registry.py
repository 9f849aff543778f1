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
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from hygge.errors import ConfigError

if TYPE_CHECKING:
    from hygge.contract import Connector

_registries: dict[str, dict[str, type]] = {"home": {}, "store": {}}
_entry_points_loaded: set[str] = set()

# Built-in connectors that live in modules which import heavy drivers: imported on first use so
# `import hygge` stays light. Maps kind -> type name -> "module:Class".
_LAZY_BUILTINS: dict[str, dict[str, str]] = {"home": {}, "store": {}}


def register(kind: str, type_name: str, cls: type) -> None:
    """Make `cls` usable from YAML as `type: <type_name>` for a home or a store.

    A name taken by another class is refused: silently replacing a built-in would make every
    later error about it nonsense. The very same class defined again (same module and
    qualified name: a reloaded module, a test run twice) replaces its earlier self.
    """
    taken = _registries[kind].get(type_name)
    lazy = _LAZY_BUILTINS[kind].get(type_name)
    owner = _qualified(taken) if taken is not None else lazy and lazy.replace(":", ".")
    if owner is not None and owner != _qualified(cls):
        raise ConfigError(
            f"{kind} type '{type_name}' is already taken by {owner}; "
            f"{_qualified(cls)} cannot register it too",
            hint=f"give {cls.__name__} another `type_name = ...`",
        )
    _registries[kind][type_name] = cls


def unregister(kind: str, type_name: str) -> None:
    """Forget a plugin's type name (for tests; built-in names come back on next lookup)."""
    _registries[kind].pop(type_name, None)


@contextmanager
def registered(kind: str, *type_names: str) -> Iterator[None]:
    """Remove the named types on exit, whatever registered them inside the block:
    `with registry.registered("home", "numbers"): class NumbersHome(Home): ...`."""
    try:
        yield
    finally:
        for type_name in type_names:
            unregister(kind, type_name)


def _qualified(cls: type) -> str:
    """`module.Qualname`: what tells two classes of the same name apart."""
    return f"{cls.__module__}.{cls.__qualname__}"


def register_lazy(kind: str, type_name: str, target: str) -> None:
    """Register a built-in connector by "module:Class" without importing it yet."""
    _LAZY_BUILTINS[kind][type_name] = target


def _load_entry_points(kind: str) -> None:
    if kind in _entry_points_loaded:
        return
    _entry_points_loaded.add(kind)
    load_plugins()
    for ep in entry_points(group=f"hygge.{kind}s"):
        register(kind, ep.name, ep.load())


def load_plugins() -> list[str]:
    """Import the modules listed in HYGGE_PLUGINS so their Homes and Stores register."""
    names = [n.strip() for n in os.environ.get("HYGGE_PLUGINS", "").split(",") if n.strip()]
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(
                f"HYGGE_PLUGINS names '{name}', which cannot be imported: {exc}",
                hint="check the module name and that it is on PYTHONPATH",
            ) from None
    return names


def _import_target(target: str) -> type:
    module_name, _, attr = target.partition(":")
    found: type = getattr(importlib.import_module(module_name), attr)
    return found


def lookup(kind: str, type_name: str) -> type[Connector[Any]] | None:
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
