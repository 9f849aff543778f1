"""Finding a definition's entities: tables through the database's catalog, or the folders
and files that match a path with `{entity}` in it. Both sort their results, so a run's list
of entities (and the flows made of it) is repeatable."""

from __future__ import annotations

import fnmatch
import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path

from hygge.entities.names import PLACEHOLDER
from hygge.errors import HomeError, HyggeError
from hygge.sql.base import CatalogTable
from hygge.sql.url import SqlUrl

GLOB_CHARS = frozenset("*?[")
SHOWN = 20  # names listed in a message before "..."
INTERNAL_PREFIX = "_hygge"  # hygge's own state and staging tables, never entities


class DiscoveryError(HyggeError):
    """Discovery found nothing, or could not look; config turns it into a ConfigError."""


@dataclass(frozen=True)
class Found:
    """One entity as discovery found it."""

    name: str
    where: str  # "table public.orders", "folder drops/orders"
    schema: str | None = None  # SQL: the table's schema
    columns: tuple[str, ...] | None = None  # SQL: the table's columns (cursor checks)


def listing(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f", ... ({len(names)} in all)" if len(names) > SHOWN else "") or "none"


# -- SQL ------------------------------------------------------------------------------------


def split_pattern(pattern: str, default_schema: str) -> tuple[str, str]:
    """`schema.table` -> (schema, table); a bare `table` is in the default schema."""
    schema, dot, table = pattern.partition(".")
    return (schema, table) if dot else (default_schema, pattern)


def sql_tables(
    url: SqlUrl, patterns: list[str], exclude: list[str], include_views: bool, what: str
) -> list[Found]:
    """The tables (and views, with `include_views`) matching `patterns` minus `exclude`."""
    from hygge.sql.connect import connect

    session = connect(url, HomeError, what)
    try:
        default = session.default_schema()
        wanted = [split_pattern(p, default) for p in patterns]
        if any(GLOB_CHARS & set(schema) for schema, _ in wanted):
            catalog = session.catalog(None)
        else:
            catalog = session.catalog(sorted({schema for schema, _ in wanted}))
    finally:
        session.close()
    catalog = [t for t in catalog if not t.name.startswith(INTERNAL_PREFIX)]
    dropped = [split_pattern(p, default) for p in exclude]
    found: dict[tuple[str, str], CatalogTable] = {}
    for pattern, (schema, table) in zip(patterns, wanted, strict=True):
        matches = [
            t
            for t in catalog
            if fnmatch.fnmatchcase(t.schema, schema) and fnmatch.fnmatchcase(t.name, table)
        ]
        kept = [t for t in matches if include_views or not t.is_view]
        kept = [t for t in kept if not any(_matches(t, s, n) for s, n in dropped)]
        if not kept:
            raise DiscoveryError(
                f"tables pattern '{pattern}' matches no table in {url.where()}"
                + _why_nothing(matches, include_views),
                hint=_what_exists(catalog, schema, include_views),
            )
        for t in kept:
            found[(t.schema, t.name)] = t
    return [
        Found(
            t.name, f"{'view' if t.is_view else 'table'} {t.schema}.{t.name}", t.schema, t.columns
        )
        for _, t in sorted(found.items())
    ]


def _matches(table: CatalogTable, schema: str, name: str) -> bool:
    return fnmatch.fnmatchcase(table.schema, schema) and fnmatch.fnmatchcase(table.name, name)


def _why_nothing(matches: list[CatalogTable], include_views: bool) -> str:
    if matches and not include_views and all(t.is_view for t in matches):
        return " (it matches only views; set `include_views: true` to move them)"
    if matches:
        return " (every table it matches is excluded)"
    return ""


def _what_exists(catalog: list[CatalogTable], schema: str, include_views: bool) -> str:
    here = sorted(
        t.name
        for t in catalog
        if fnmatch.fnmatchcase(t.schema, schema) and (include_views or not t.is_view)
    )
    if here:
        return f"tables in schema {schema}: {listing(here)}"
    schemas = sorted({t.schema for t in catalog})
    return f"schema {schema} has no tables; schemas with tables: {listing(schemas)}"


# -- files ----------------------------------------------------------------------------------


def file_entities(
    template: str,
    exclude: list[str],
    label: str,
    storage_options: dict[str, str] | None = None,
) -> tuple[list[Found], list[str]]:
    """One entity per name in the folder before `{entity}` that matches the path, and whose
    rest of the path holds files. Returns (entities, notes on names skipped)."""
    if "://" in template:
        return _remote_entities(template, exclude, label, storage_options)
    head, component, rest = _split(os.path.normpath(template), os.sep, label)
    parent = Path(head or ("/" if template.startswith("/") else "."))
    if not parent.is_dir():
        raise DiscoveryError(
            f"folder {parent} does not exist, so no entities can be found in it ({label})",
            hint="check the path; relative paths are resolved from the folder of flows.yml",
        )
    shape = _shape(component)
    found, notes, names = [], [], sorted(os.listdir(parent))
    for entry in names:
        name = _entity_name(shape, entry, exclude)
        if name is None:
            continue
        where = parent / entry
        if not _holds_files(where, rest):
            notes.append(f"{where}: no files match {Path(where, *rest)}, skipped")
            continue
        found.append(Found(name, f"{'folder' if where.is_dir() else 'file'} {where}"))
    if not found:
        visible = [n for n in names if not n.startswith((".", "_"))]
        raise DiscoveryError(
            f"path {template} matches no entity ({label})",
            hint=f"{parent} holds: {listing(visible)}" + (f"; {notes[0]}" if notes else ""),
        )
    return found, notes


def _split(template: str, sep: str, label: str) -> tuple[str, str, list[str]]:
    """(the folder before `{entity}`, the name around it, the parts after it)."""
    parts = template.split(sep)
    at = [i for i, p in enumerate(parts) if PLACEHOLDER in p]
    if len(at) != 1 or parts[at[0]].count(PLACEHOLDER) != 1:
        raise DiscoveryError(
            f"`{{entity}}` must appear once in the path ({label})",
            hint="e.g. drops/{entity}/*.csv (one entity per folder) or drops/{entity}.csv",
        )
    parent, component = sep.join(parts[: at[0]]), parts[at[0]]
    if GLOB_CHARS & set(parent) or GLOB_CHARS & set(component.replace(PLACEHOLDER, "")):
        raise DiscoveryError(
            f"the path before and around `{{entity}}` must be plain names ({label})",
            hint="put patterns after the entity's folder: drops/{entity}/*.csv",
        )
    return parent, component, parts[at[0] + 1 :]


def _entity_name(shape: re.Pattern[str], entry: str, exclude: list[str]) -> str | None:
    """The entity a folder or file name stands for (None: not one, hidden, or excluded)."""
    match = shape.match(entry)
    if not match or entry.startswith((".", "_")):
        return None
    name = match.group(1)
    return None if any(fnmatch.fnmatchcase(name, p) for p in exclude) else name


def _shape(component: str) -> re.Pattern[str]:
    before, after = component.split(PLACEHOLDER)
    return re.compile(re.escape(before) + "(.+)" + re.escape(after) + r"\Z", re.S)


def _remote_entities(
    template: str, exclude: list[str], label: str, storage_options: dict[str, str] | None
) -> tuple[list[Found], list[str]]:
    """Object storage: one listing of the prefix before `{entity}`, through hygge.storage."""
    from hygge.secrets import mask_url
    from hygge.storage import ObjectStorage

    parent, component, rest = _split(template, "/", label)
    shape, tail = _shape(component), "/".join(rest)
    storage = ObjectStorage.for_url(parent, storage_options)
    names: dict[str, bool] = {}  # entity -> has a matching object
    seen: set[str] = set()
    for entry in storage.list(parent):
        first, _, below = entry.url[len(parent) + 1 :].partition("/")
        seen.add(first)
        name = _entity_name(shape, first, exclude)
        if name is None:
            continue
        hidden = any(x.startswith((".", "_")) for x in below.split("/") if x)
        fits = fnmatch.fnmatchcase(below, tail) if tail else not hidden
        names[name] = names.get(name, False) or fits
    found = [Found(n, f"prefix {mask_url(parent)}/{n}") for n, ok in sorted(names.items()) if ok]
    notes = [
        f"{mask_url(parent)}/{n}: no objects match, skipped" for n, ok in names.items() if not ok
    ]
    if not found:
        visible = sorted(n for n in seen if not n.startswith((".", "_")))
        raise DiscoveryError(
            f"path {mask_url(template)} matches no entity ({label})",
            hint=f"{mask_url(parent)} holds: {listing(visible)}",
        )
    return found, notes


def _holds_files(where: Path, rest: list[str]) -> bool:
    """True when the entity's path (`where` and the rest of the template) has data."""
    if rest:
        tail = os.path.join(*rest)
        if GLOB_CHARS & set(tail):
            pattern = os.path.join(glob.escape(str(where)), tail)
            return any(Path(p).is_file() for p in glob.glob(pattern, recursive=True))
        return Path(where, tail).exists()
    if where.is_file():
        return True
    return any(
        p.is_file() and not any(x.startswith((".", "_")) for x in p.relative_to(where).parts)
        for p in where.rglob("*")
    )
