"""The shorthand forms of flows.yml: a home or store given as a path or URL gets its type from
the path's extension or the URL's scheme; a bare word is a named home/store or a typo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hygge import registry
from hygge.config_source import Source
from hygge.storage.location import is_object_url


def infer_type(source: Source, kind: str, settings: dict[str, Any], origin: tuple[Any, ...]) -> str:
    """The type implied by a path's extension or a URL's scheme."""
    target = settings.get("path") or settings.get("connection")
    if not isinstance(target, str):
        raise source.error(
            f"missing required key 'type' for the {kind}",
            origin,
            key=f"{kind}.type",
            hint=f"add `type:` ({', '.join(registry.names(kind))}), or a "
            "`path`/`connection` it can be inferred from",
        )
    classes = registry.all_classes(kind)
    if "://" in target and not is_object_url(target):
        scheme = target.split("://", 1)[0].split("+", 1)[0].lower()
        for name, cls in classes.items():
            if scheme in getattr(cls, "url_schemes", ()):
                return name
        raise source.error(
            f"no {kind} type handles '{scheme}://' URLs",
            origin,
            key=kind,
            hint="set `type:` explicitly",
        )
    lowered = target.lower().rstrip("/")
    for name, cls in classes.items():
        if lowered.endswith(tuple(getattr(cls, "suffixes", ()) or ())):
            return name
    if kind == "home":
        local = not is_object_url(target)  # a prefix is not listed to guess its type
        found = _type_of_folder(Path(source.base_dir) / target, classes) if local else None
        if found:
            return found
        raise source.error(
            f"cannot tell the type of '{target}' from its name",
            origin,
            key=kind,
            hint=f"add `type:` ({', '.join(sorted(classes))})",
        )
    return "parquet"  # a store path without an extension is a parquet dataset folder


def _type_of_folder(folder: Path, classes: dict[str, Any]) -> str | None:
    if not folder.is_dir():
        return None
    found = {
        name
        for p in folder.rglob("*")
        if p.is_file()
        for name, cls in classes.items()
        if p.name.lower().endswith(tuple(getattr(cls, "suffixes", ()) or ()))
    }
    return found.pop() if len(found) == 1 else None


def looks_like_typo(source: Source, kind: str, ref: str, named: dict[str, Any]) -> bool:
    """A bare word such as `userz` that is no named home/store: a typo, not a path.

    A bare word may still be a folder (`store: lake`): for a home it must exist, for a store
    it is taken as a path unless it is close to a defined store's name.
    """
    if any(c in ref for c in "/.:\\*?${"):
        return False
    if kind == "home":
        return not (source.base_dir / ref).exists()
    return registry.suggest(ref, list(named)) is not None
