"""A flow definition with entities -> ordinary flows named `<flow>.<entity>`.

This runs between parsing and validation: each entity's flow is a plain raw flow (named
homes/stores inlined, `${VAR}` unresolved), so validation, the plan, `hygge run`, `hygge
enqueue` (one task per entity), state, retries and the summary all treat an entity as a flow
of its own. Discovery resolves variables (the connection, the path) only for looking.

Over 400 lines: one definition's expansion (discovery, per-entity overrides,
cursors, targets, their errors) kept together so each error sits beside the rule it checks.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hygge import registry
from hygge.config_source import Source, choices_hint
from hygge.contract import Connector
from hygge.entities import discover
from hygge.entities.names import has_placeholder, path_component, problem, substitute
from hygge.errors import ConfigError, HyggeError
from hygge.interpolate import UndefinedVariable, interpolate
from hygge.shorthand import infer_type
from hygge.sql.url import parse_url
from hygge.storage.location import is_object_url

DISCOVERY_KEYS = ("tables", "exclude", "include_views", "missing_cursor")
CURSOR_KEYS = ("cursor", "lag", "initial")
NESTED = ("home", "store", "options")


@dataclass(frozen=True)
class Entity:
    """One entity of a definition, and the raw flow it runs as."""

    name: str
    flow: str
    where: str  # what it was found as: "table public.orders", "folder drops/orders"
    raw: dict[str, Any] = field(repr=False)
    note: str = ""  # e.g. "loads in full every run: no column updated_at"


@dataclass
class EntitySet:
    """A definition's entities as discovered for this run."""

    definition: str
    described: str
    entities: list[Entity]
    notes: list[str]
    seconds: float  # discovery time
    store_type: str
    store_template: dict[str, Any] = field(repr=False)  # resolved: may hold secrets

    @property
    def flows(self) -> list[str]:
        return [e.flow for e in self.entities]

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entities]

    @property
    def store_path(self) -> str | None:
        path = setting(self.store_template, "path")
        return os.path.normpath(path) if isinstance(path, str) and "://" not in path else path


def is_definition(raw: Mapping[str, Any]) -> bool:
    """A flow that covers entities: `tables:` or `{entity}` in its home, or `entities:`."""
    home = raw.get("home")
    return (
        "entities" in raw
        or has_placeholder(home)
        or (isinstance(home, dict) and setting(home, "tables") is not None)
    )


def depends_on(raw: Mapping[str, Any]) -> list[str]:
    """The flows a raw flow names in `depends_on` (top level or under `options:`)."""
    value = setting(dict(raw), "depends_on") or []
    if isinstance(value, str):
        return [value]
    # anything else but a list is reported where the options are validated, with file:line
    return [str(v) for v in value] if isinstance(value, list) else []


def expand(
    source: Source,
    definition: str,
    raw: dict[str, Any],
    *,
    env: Mapping[str, str],
    option_keys: set[str],
    upstream: Mapping[str, EntitySet],
) -> EntitySet:
    """Discover the definition's entities and make one raw flow of each. `env` resolves
    variables for looking only; `option_keys` are the flow options' names (per-entity keys
    are routed by name); `upstream` holds the definitions expanded so far (chaining)."""
    return _Expansion(_Context(source, definition, env, option_keys, upstream), raw).run()


@dataclass(frozen=True)
class _Context:
    source: Source
    definition: str
    env: Mapping[str, str]
    option_keys: set[str]
    upstream: Mapping[str, EntitySet]


class _Expansion:
    """One definition's expansion, step by step (see `run`)."""

    def __init__(self, context: _Context, raw: dict[str, Any]) -> None:
        self.source, self.definition, self.env = context.source, context.definition, context.env
        self.here: tuple[Any, ...] = ("flows", context.definition)
        self.option_keys, self.upstream = context.option_keys, context.upstream
        self.home = self._mapping(raw["home"], "home")
        self.store = self._mapping(raw["store"], "store")
        self.discovery = {k: self._take(self.home, k) for k in DISCOVERY_KEYS}
        self.overrides = raw.get("entities") or {}
        self.flow = {k: v for k, v in raw.items() if k not in ("home", "store", "entities")}

    def error(
        self, message: str, *path: Any, key: str | None = None, hint: str | None = None
    ) -> ConfigError:
        return self.source.error(message, (*self.here, *path), key=key, hint=hint)

    # -- steps ------------------------------------------------------------------------------
    def run(self) -> EntitySet:
        if not isinstance(self.overrides, dict) or not all(
            isinstance(v, dict) or v is None for v in self.overrides.values()
        ):
            raise self.error(
                "`entities:` must map entity names to their settings",
                "entities",
                key="entities",
                hint="e.g. entities: {orders: {cursor: updated_at}}",
            )
        started = time.perf_counter()
        found, notes, described, inherited = self._discover()
        seconds = time.perf_counter() - started
        self._check_names(found)
        self._check_overrides(found)
        first = found[0].name
        home_cls = self._class("home", self._entity_home(found[0], inherited))
        store_cls = self._class("store", substitute(self.store, first))
        if len(found) > 1 and not has_placeholder(self.store):
            raise self.error(
                f"{len(found)} entities ({discover.listing([f.name for f in found])}) would all "
                "write to the same store, which has no `{entity}` in its path or table",
                "store",
                key="store",
                hint='put {entity} where each one goes: path: "lake/crm/{entity}" or '
                'table: "{entity}"',
            )
        entities: list[Entity] = []
        missing: list[discover.Found] = []
        for item in found:
            entity = self._entity(item, inherited, home_cls, store_cls, missing)
            if entity is not None:
                entities.append(entity)
        if missing:
            self._no_cursor(missing)
        self._check_targets(entities, str(store_cls.type_name))
        return EntitySet(
            self.definition,
            described,
            entities,
            notes,
            seconds,
            str(store_cls.type_name),
            self._store_template(),
        )

    def _discover(self) -> tuple[list[discover.Found], list[str], str, str | None]:
        tables = self.discovery["tables"]
        exclude = self._names_list("exclude")
        if tables is not None:
            return self._discover_tables(exclude)
        for key in ("include_views", "missing_cursor"):
            if self.discovery[key] is not None:
                raise self.error(
                    f"`{key}` applies to a SQL home with `tables:`", "home", key=f"home.{key}"
                )
        path = setting(self._resolved(self.home, "home"), "path")
        if not isinstance(path, str) or "{entity}" not in path:
            raise self.error(
                "`entities:` needs a home that finds them: `tables:` for a SQL home, or "
                "`{entity}` in a file home's path",
                "home",
                key="home",
                hint='e.g. home: {type: csv, path: "drops/{entity}/*.csv"}',
            )
        template = self._absolute(path)
        for name in depends_on(self.flow):
            up = self.upstream.get(name)
            if up is not None and up.store_path and _within(template, up.store_path):
                found = [discover.Found(e.name, f"written by {e.flow}") for e in up.entities]
                return found, [], f"{len(found)} entities written by flow '{name}'", name
        try:
            found, notes = discover.file_entities(
                template,
                exclude,
                f"flow '{self.definition}'",
                setting(self._resolved(self.home, "home"), "storage_options"),
            )
        except HyggeError as exc:  # nothing matched, or the object store refused
            raise self.error(exc.message, "home", key="home.path", hint=exc.hint) from None
        parent = template.split("{entity}", 1)[0]
        return found, notes, f"{len(found)} entities in {parent}", None

    def _discover_tables(
        self, exclude: list[str]
    ) -> tuple[list[discover.Found], list[str], str, None]:
        patterns = self._names_list("tables")
        if not patterns:
            raise self.error("`tables:` is empty", "home", key="home.tables")
        for key in ("table", "query"):
            if setting(self.home, key) is not None:
                raise self.error(
                    f"give either `tables:` (many entities) or `{key}:` (one flow), not both",
                    "home",
                    key=f"home.{key}",
                )
        if has_placeholder(self.home):
            raise self.error(
                "a SQL home with `tables:` names its tables itself; `{entity}` belongs in the "
                "store",
                "home",
                key="home",
            )
        missing_cursor = self.discovery["missing_cursor"]
        if missing_cursor not in (None, "error", "full"):
            raise self.error(
                f"missing_cursor must be 'error' or 'full' (got {missing_cursor!r})",
                "home",
                key="home.missing_cursor",
            )
        views = self.discovery["include_views"]
        if isinstance(views, str):
            views = interpolate(views, self.env).lower() in ("true", "yes", "on", "1")
        resolved = self._resolved(self.home, "home")
        what = f"home of flow '{self.definition}'"
        url = parse_url(setting(resolved, "connection"), what)
        try:
            found = discover.sql_tables(url, patterns, exclude, bool(views), what)
        except ConfigError:
            raise
        except HyggeError as exc:  # nothing matched, or the database did not answer
            raise self.error(exc.message, "home", key="home.tables", hint=exc.hint) from None
        text = f"{len(found)} table(s) matching {', '.join(patterns)}"
        if exclude:
            text += f" except {', '.join(exclude)}"
        return found, [], f"{text} in {url.masked}", None

    def _check_names(self, found: list[discover.Found]) -> None:
        seen: dict[str, discover.Found] = {}
        for item in found:
            why = problem(item.name)
            if why:
                raise self.error(
                    f"entity {item.name!r} ({item.where}) cannot be a flow: {why}",
                    "home",
                    hint="leave it out with `exclude:`",
                )
            if item.name in seen:
                raise self.error(
                    f"two entities are both named '{item.name}': {seen[item.name].where} and "
                    f"{item.where}",
                    "home",
                    hint="split them into two definitions, or leave one out with `exclude:`",
                )
            seen[item.name] = item

    def _check_overrides(self, found: list[discover.Found]) -> None:
        names = [f.name for f in found]
        for name in self.overrides:
            if str(name) not in names:
                raise self.error(
                    f"no entity named '{name}' was found",
                    "entities",
                    name,
                    key=f"entities.{name}",
                    hint=choices_hint(str(name), names, "entities"),
                )

    def _entity_home(self, item: discover.Found, inherited: str | None) -> dict[str, Any]:
        if item.schema is not None:  # a table
            home = copy.deepcopy(self.home)
            _set(home, "table", item.name)
            _set(home, "schema", item.schema)
            return home
        name = path_component(item.name) if inherited else item.name
        home_settings: dict[str, Any] = substitute(self.home, name, home=True)
        return home_settings

    def _entity(
        self,
        item: discover.Found,
        inherited: str | None,
        home_cls: type[Connector[Any]],
        store_cls: type[Connector[Any]],
        missing: list[discover.Found],
    ) -> Entity | None:
        home = self._entity_home(item, inherited)
        store = substitute(self.store, item.name)
        flow = copy.deepcopy(self.flow)
        over = self._route(item.name, self.overrides.get(item.name) or {}, home_cls, store_cls)
        for target, values in zip((home, store, flow), over, strict=True):
            for key, value in values.items():
                _set(target, key, value)
        if inherited:
            deps = [f"{d}.{item.name}" if d == inherited else d for d in depends_on(flow)]
            _set(flow, "depends_on", deps)
        note = ""
        if item.schema is not None and self._flag(flow, "incremental"):
            cursor = setting(self._resolved(home, "home"), "cursor")
            columns = item.columns or ()
            if cursor is None or cursor not in columns:
                chosen = "cursor" in over[0]
                if chosen:
                    raise self.error(
                        f"entities -> {item.name}: cursor column '{cursor}' is not in {item.where}",
                        "entities",
                        item.name,
                        key=f"entities.{item.name}.cursor",
                        hint=f"its columns: {discover.listing(list(columns))}",
                    )
                if self.discovery["missing_cursor"] != "full":
                    missing.append(item)
                    return None
                _set(flow, "incremental", False)
                for key in CURSOR_KEYS:
                    _pop(home, key)
                if "mode" not in over[1]:
                    _set(store, "mode", "replace")
                note = "loads in full every run" + (
                    f" (no column {cursor})" if cursor else " (no cursor)"
                )
        raw = {**flow, "home": home, "store": store}
        return Entity(item.name, f"{self.definition}.{item.name}", item.where, raw, note)

    def _route(
        self, entity: str, override: dict[str, Any], home_cls: type, store_cls: type
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """Per-entity settings to the home, the store or the flow, by the key's name; a key
        both the home and the store know must be nested (`home: {...}` / `store: {...}`)."""
        home_keys, store_keys = _keys(home_cls), _keys(store_cls)
        routed: tuple[dict[str, Any], dict[str, Any], dict[str, Any]] = ({}, {}, {})
        for key, value in override.items():
            at = ("entities", entity, key)
            if key in NESTED:
                if not isinstance(value, dict):
                    raise self.error(f"`{key}` must be a mapping", *at, key=f"entities.{entity}")
                routed[NESTED.index(key) if key != "options" else 2].update(value)
            elif key in self.option_keys:
                routed[2][key] = value
            elif key in home_keys and key in store_keys:
                raise self.error(
                    f"'{key}' is a setting of both the home and the store",
                    *at,
                    key=f"entities.{entity}.{key}",
                    hint=f"nest it: home: {{{key}: ...}} or store: {{{key}: ...}}",
                )
            elif key in home_keys:
                routed[0][key] = value
            elif key in store_keys:
                routed[1][key] = value
            else:
                choices = sorted(home_keys | store_keys | self.option_keys)
                raise self.error(
                    f"unknown key '{key}' (not a setting of the home, the store or the flow)",
                    *at,
                    key=f"entities.{entity}.{key}",
                    hint=choices_hint(str(key), choices, "keys"),
                )
        return routed

    def _no_cursor(self, missing: list[discover.Found]) -> None:
        cursor = setting(self.home, "cursor")
        names = [f"{m.schema}.{m.name}" for m in missing]
        why = f"no column '{cursor}' (the definition's `cursor:`)" if cursor else "no `cursor:`"
        raise self.error(
            f"incremental: true, but table(s) {discover.listing(names)} have {why}",
            "home",
            key="home.cursor",
            hint=f"give each a cursor under `entities:` (entities: {{{missing[0].name}: "
            "{cursor: COLUMN}}), or set `missing_cursor: full` in the home to load such "
            "tables in full every run",
        )

    def _check_targets(self, entities: list[Entity], store_type: str) -> None:
        """Two entities writing one target would overwrite each other: refuse it."""
        seen: dict[str, Entity] = {}
        for entity in entities:
            store = self._resolved(entity.raw["store"], "store")
            if store_type == "sql":
                self._check_identifier(entity, store)
            key = json.dumps(store, sort_keys=True, default=str).lower()
            if key in seen:
                other = seen[key]
                target = setting(store, "path") or setting(store, "table") or "the same target"
                raise self.error(
                    f"entities '{other.name}' and '{entity.name}' would both write to {target}",
                    "store",
                    key="store",
                    hint="names that differ only in case share a target on many systems; "
                    "leave one out with `exclude:`",
                )
            seen[key] = entity

    def _check_identifier(self, entity: Entity, store: dict[str, Any]) -> None:
        """A SQL table name the database would cut short is an error, not a silent clash."""
        table = setting(store, "table")
        if not isinstance(table, str):
            return
        try:
            url = parse_url(setting(store, "connection"), "store")
        except ConfigError:
            return  # validation of the flow itself says what is wrong with the URL
        from hygge.sql.connect import session_class  # loaded for a SQL store only

        too_long = session_class(url).identifier_problem(table)
        if too_long:
            raise self.error(
                f"entity '{entity.name}': table name '{table}' {too_long}",
                "store",
                key="store.table",
                hint="use a shorter table template, or leave the entity out with `exclude:`",
            )

    # -- helpers ----------------------------------------------------------------------------
    def _mapping(self, value: Any, kind: str) -> dict[str, Any]:
        if isinstance(value, str):
            url = "://" in value and not is_object_url(value) and "{entity}" not in value
            key = "connection" if url else "path"
            return {key: value}
        if not isinstance(value, dict):
            raise self.error(f"a {kind} must be a path, a URL or a mapping", kind, key=kind)
        return copy.deepcopy(value)

    def _take(self, mapping: dict[str, Any], key: str) -> Any:
        """Remove a setting from a home (top level or `options:`) and return it."""
        options = mapping.get("options")
        inner: dict[str, Any] = options if isinstance(options, dict) else {}
        top, nested = mapping.pop(key, None), inner.pop(key, None)
        if top is not None and nested is not None and top != nested:
            raise self.error(
                f"'{key}' is set both at the top level and under options, differently",
                "home",
                key=f"home.{key}",
                hint="keep one of them",
            )
        return top if top is not None else nested

    def _names_list(self, key: str) -> list[str]:
        value = self.discovery[key]
        if value is None:
            return []
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise self.error(
                f"`{key}` must be a name or a list of names (globs allowed)",
                "home",
                key=f"home.{key}",
            )
        return [interpolate(v, self.env) for v in values]

    def _resolved(self, mapping: dict[str, Any], kind: str) -> dict[str, Any]:
        try:
            resolved: dict[str, Any] = interpolate(mapping, self.env)
            return resolved
        except UndefinedVariable as exc:
            raise self.error(
                f"environment variable {exc.name} is not set (needed to find the entities)",
                kind,
                key=kind,
                hint=f"export {exc.name}=..., or give a default: ${{{exc.name}:-value}}",
            ) from None

    def _absolute(self, path: str) -> str:
        if "://" in path or os.path.isabs(path):
            return path
        return str(Path(self.source.base_dir) / path)

    def _class(self, kind: str, mapping: dict[str, Any]) -> type[Connector[Any]]:
        """The connector class one entity's home or store has (all entities share it)."""
        resolved = self._resolved(mapping, kind)
        flat = {**(resolved.get("options") or {}), **resolved}
        type_name = flat.get("type") or infer_type(self.source, kind, flat, (*self.here, kind))
        cls = registry.lookup(kind, str(type_name))
        if cls is None:
            raise self.error(
                f"unknown {kind} type '{type_name}'",
                kind,
                key=f"{kind}.type",
                hint=choices_hint(str(type_name), registry.names(kind), "types"),
            )
        return cls

    def _flag(self, flow: dict[str, Any], key: str) -> bool:
        value = setting(flow, key)
        if isinstance(value, str):
            return interpolate(value, self.env).strip().lower() in ("true", "yes", "on", "1")
        return bool(value)

    def _store_template(self) -> dict[str, Any]:
        store = self._resolved(self.store, "store")
        path = setting(store, "path")
        if isinstance(path, str):
            _set(store, "path", self._absolute(path))
        return store


def setting(mapping: dict[str, Any], key: str) -> Any:
    """A setting at the top level of a home/store/flow or under its `options:`."""
    if key in mapping:
        return mapping[key]
    inner = mapping.get("options")
    return inner.get(key) if isinstance(inner, dict) else None


def _set(mapping: dict[str, Any], key: str, value: Any) -> None:
    """Set a setting at the top level (and drop it from `options:`, so they cannot differ)."""
    _pop(mapping, key)
    mapping[key] = value


def _pop(mapping: dict[str, Any], key: str) -> None:
    mapping.pop(key, None)
    inner = mapping.get("options")
    if isinstance(inner, dict):
        inner.pop(key, None)


def _within(path: str, folder: str) -> bool:
    """True when `path` is `folder` or below it."""
    path = os.path.normpath(path)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _keys(cls: type[Connector[Any]]) -> set[str]:
    """Every setting a connector class takes, by name and alias."""
    fields = cls.Settings.model_fields
    return set(fields) | {f.alias for f in fields.values() if f.alias}
