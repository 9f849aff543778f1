"""Entity names as flow names, identifiers and path components, safely.

An entity name comes from outside (a table name, a folder name), so it is checked before it
becomes part of anything: names that could break a flow name or a path (separators, control
characters) are refused; in a store's path a name is percent-escaped where it is not a plain
file name, so it can never leave its folder, hide itself (`.x`, `_x` are skipped by readers)
or land in hygge's own `_hygge` area. SQL identifiers are quoted by the SQL store as always.
"""

from __future__ import annotations

import glob
import re
from typing import Any

PLACEHOLDER = "{entity}"
_PLAIN = frozenset("-_.=+,@ ")
_FLOW_PART = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")  # as hygge.config.FLOW_NAME allows


def problem(name: str) -> str | None:
    """Why `name` cannot be an entity (None: it can)."""
    if not name or not name.strip():
        return "the name is empty"
    if "/" in name or "\\" in name:
        return "the name holds a path separator"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "the name holds a control character"
    if not _FLOW_PART.fullmatch(name) or ".." in name:
        return (
            "a flow name `<flow>.<entity>` may hold only letters, digits, '_', '-' and '.' "
            "(an entity must not start with '.' or hold '..')"
        )
    return None


def path_component(name: str) -> str:
    """`name` as one safe path component: unusual characters, and a leading `.` or `_`, as
    %XX (UTF-8). The escape is one-to-one, so two entities never share a folder."""
    out = []
    for i, char in enumerate(name):
        plain = char.isalnum() or char in _PLAIN
        if not plain or char == "%" or (i == 0 and char in "._"):
            out.append("".join(f"%{b:02X}" for b in char.encode()))
        else:
            out.append(char)
    return "".join(out)


def has_placeholder(value: Any) -> bool:
    """True when `{entity}` appears in any string of `value` (nested mappings and lists)."""
    if isinstance(value, str):
        return PLACEHOLDER in value
    if isinstance(value, dict):
        return any(has_placeholder(v) for v in value.values())
    if isinstance(value, list):
        return any(has_placeholder(v) for v in value)
    return False


def substitute(value: Any, name: str, *, home: bool = False, key: str = "") -> Any:
    """A copy of `value` with `{entity}` replaced: in a `path` by the escaped name (a home's
    path also glob-escaped, as it is matched as a pattern), elsewhere by the name itself."""
    if isinstance(value, str):
        if PLACEHOLDER not in value:
            return value
        text = name
        if key == "path":
            text = glob.escape(name) if home else path_component(name)
        return value.replace(PLACEHOLDER, text)
    if isinstance(value, dict):
        return {k: substitute(v, name, home=home, key=str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, name, home=home, key=key) for v in value]
    return value
