"""Which entities a definition had at its last run, kept at its store, so the next run can
report an entity that disappeared (a dropped table, a removed folder) instead of silently
forgetting it. Its data at the store is left as it is; the report is a warning, not a failure.

Where the list lives, beside the data it describes:
- file stores: `<folder before {entity}>/_hygge/entities/<definition>.json` (readers that glob
  `**/*.parquet` never see it; hygge's file homes skip `_` folders);
- object storage: the same, as one object under the prefix before `{entity}`;
- SQL stores: a row `entities:<definition>` of the `_hygge_state` table in the store's schema.
Other store types keep no list; `notes()` says so.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hygge.entities.expand import EntitySet, setting
from hygge.entities.names import PLACEHOLDER, has_placeholder, path_component


@dataclass(frozen=True)
class Previous:
    """The entities recorded by the last run, and when."""

    names: list[str]
    at: str


def gone(entity_set: EntitySet) -> list[str]:
    """Notes on entities the last run had that this one did not find (empty: none)."""
    place = _place(entity_set)
    if place is None:
        return [
            f"{entity_set.definition}: no list of entities is kept at this store (type "
            f"'{entity_set.store_type}'), so an entity that disappears is not reported"
        ]
    try:
        previous = place.read()
    except Exception as exc:  # a report, never a reason to fail the run
        return [f"{entity_set.definition}: cannot read the last run's entities: {_short(exc)}"]
    if previous is None:
        return []
    now = set(entity_set.names)
    missing = [n for n in previous.names if n not in now]
    return [
        f"{entity_set.definition}: entity '{name}' was in the last run ({previous.at}) but is "
        f"gone now; flow '{entity_set.definition}.{name}' did not run and its data at the "
        "store was left as it is"
        for name in missing
    ]


def record(entity_set: EntitySet) -> str | None:
    """Remember this run's entities; a note if that failed (None when done or not kept)."""
    place = _place(entity_set)
    if place is None:
        return None
    try:
        place.write(entity_set.names)
    except Exception as exc:
        return f"{entity_set.definition}: cannot record this run's entities: {_short(exc)}"
    return None


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _FilePlace:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> Previous | None:
        if not self.path.exists():
            return None
        data = json.loads(self.path.read_text())
        return Previous(list(data["entities"]), str(data.get("at", "")))

    def write(self, names: list[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps({"entities": names, "at": _now()}))
        os.replace(tmp, self.path)  # a reader sees the old list or the new one


class _SqlPlace:
    def __init__(self, store: dict[str, Any], definition: str) -> None:
        self.connection = setting(store, "connection")
        self.schema = setting(store, "schema") or setting(store, "db_schema")
        self.key = f"entities:{definition}"

    def _session(self) -> Any:
        from hygge.errors import StoreError
        from hygge.sql.connect import connect
        from hygge.sql.url import parse_url

        return connect(parse_url(self.connection, "store"), StoreError, "store")

    def read(self) -> Previous | None:
        from hygge.sql import state_table as state

        session = self._session()
        try:
            data = state.read(session, self.schema, self.key)
        finally:
            session.close()
        return None if data is None else Previous(list(data["entities"]), data["committed_at"])

    def write(self, names: list[str]) -> None:
        from hygge.sql import state_table as state

        record = {"definition": {"entities_of": self.key}, "entities": names}
        record["committed_at"] = _now()
        session = self._session()
        try:
            state.ensure_table(session, self.schema)
            session.begin()
            for step in state.publish_steps(session, self.schema, {self.key: record}):
                session.execute(step)
            session.commit()
        finally:
            session.close()


class _ObjectPlace:
    """The list as one small object, through hygge.storage (a put replaces it whole)."""

    def __init__(self, url: str, storage_options: dict[str, str] | None) -> None:
        from hygge.storage import ObjectStorage

        self.url = url
        self.storage = ObjectStorage.for_url(url, storage_options)

    def read(self) -> Previous | None:
        data = self.storage.read_bytes(self.url)
        if data is None:
            return None
        value = json.loads(data)
        return Previous(list(value["entities"]), str(value.get("at", "")))

    def write(self, names: list[str]) -> None:
        self.storage.write_bytes(self.url, json.dumps({"entities": names, "at": _now()}).encode())


def _place(entity_set: EntitySet) -> _FilePlace | _SqlPlace | _ObjectPlace | None:
    store = entity_set.store_template
    path = setting(store, "path")
    if entity_set.store_type == "sql":
        if has_placeholder([setting(store, "schema"), setting(store, "connection")]):
            return None
        return _SqlPlace(store, entity_set.definition)
    name = path_component(entity_set.definition) + ".json"
    if isinstance(path, str) and "://" in path and PLACEHOLDER in path:
        root = path.split(PLACEHOLDER, 1)[0].rsplit("/", 1)[0]
        options = setting(store, "storage_options")
        return _ObjectPlace(f"{root}/_hygge/entities/{name}", options)
    if isinstance(path, str) and "://" not in path:
        parts = Path(path).parts
        at = next((i for i, p in enumerate(parts) if PLACEHOLDER in p), None)
        folder = Path(*parts[:at]) if at else Path(path).parent
        return _FilePlace(folder / "_hygge" / "entities" / name)
    return None
