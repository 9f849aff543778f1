"""`${VAR}` and `${VAR:-default}` from the environment; `$${...}` is a literal `${...}`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_PATTERN = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class UndefinedVariable(KeyError):
    """A `${VAR}` with no default whose variable is not set."""

    def __init__(self, name: str, path: tuple[Any, ...]) -> None:
        super().__init__(name)
        self.name = name
        self.path = path


def interpolate(value: Any, env: Mapping[str, str], path: tuple[Any, ...] = ()) -> Any:
    """A copy of `value` (nested dicts/lists/strings) with every variable replaced."""
    if isinstance(value, str):
        return _substitute(value, env, path)
    if isinstance(value, dict):
        return {k: interpolate(v, env, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, (*path, i)) for i, v in enumerate(value)]
    return value


def _substitute(text: str, env: Mapping[str, str], path: tuple[Any, ...]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        if name in env:
            return ""
        raise UndefinedVariable(name, path)

    return _PATTERN.sub(replace, text)
