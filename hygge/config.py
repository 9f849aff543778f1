"""flows.yml -> validated flow specs.

Accepts the three forms (explicit, shorthand paths/URLs, named homes and stores), mixed
freely; a setting may stand at the top level of a home/store or under its `options:`.
`${VAR}` / `${VAR:-default}` are resolved from the environment. Every error names the file,
the line, the flow and the key, and suggests the nearest valid choice.

A flow also exists in a *raw* form: self-contained (named homes/stores inlined) with `${VAR}`
left unresolved. That is what travels on a queue, so secrets never leave the worker's
environment; `parse_flow` turns it into a spec where it runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from hygge import registry, yamlpos
from hygge.connector import Connector, ConnectorSettings, OptionsConflict, fold_options
from hygge.errors import ConfigError
from hygge.interpolate import UndefinedVariable, interpolate
from hygge.plan import find_cycle, waves

TOP_LEVEL_KEYS = ("homes", "stores", "flows")
FLOW_KEYS = ("home", "store", "options")


class FlowOptions(BaseModel):
    """Settings of a flow itself (as opposed to its home or store)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: int | None = Field(
        None, gt=0, description="Rows per batch, unless the home sets it."
    )
    depends_on: list[str] = Field(
        default_factory=list, description="Flows that must succeed first."
    )
    retries: int = Field(3, ge=0, description="Retries of transient faults (with backoff).")
    retry_delay: float = Field(1.0, ge=0, description="Base delay in seconds between retries.")
    queue_size: int = Field(4, ge=1, description="Batches buffered between home and store.")
    incremental: bool = Field(False, description="Move only what is new since the last run.")

    @field_validator("depends_on", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


@dataclass(frozen=True)
class ConnectorSpec:
    """A validated home or store: which class, with which settings."""

    kind: str
    name: str
    type_name: str
    settings: ConnectorSettings

    def build(self) -> Connector:
        cls = registry.lookup(self.kind, self.type_name)
        assert cls is not None
        return cls(self.name, self.settings)


@dataclass(frozen=True)
class FlowSpec:
    """A validated flow, ready to build; `raw` is its queue-safe form (variables unresolved)."""

    name: str
    home: ConnectorSpec
    store: ConnectorSpec
    options: FlowOptions
    raw: dict[str, Any] = field(repr=False)

    def build(self, on_progress: Any = None, full_refresh: bool = False) -> Any:
        """The runnable Flow. An incremental flow appends (or merges) what is new; with
        `full_refresh` it forgets its state and replaces the destination."""
        from hygge.flow import Flow

        store = self.store
        if self.options.incremental:
            mode = getattr(store.settings, "mode", None)
            if full_refresh:
                mode = "replace"
            elif mode == "replace":
                mode = "append"
            if mode is not None:
                store = replace(store, settings=store.settings.model_copy(update={"mode": mode}))
        return Flow(
            self.home.build(),  # type: ignore[arg-type]
            store.build(),  # type: ignore[arg-type]
            name=self.name,
            queue_size=self.options.queue_size,
            retries=self.options.retries,
            retry_delay=self.options.retry_delay,
            incremental=self.options.incremental,
            full_refresh=full_refresh,
            on_progress=on_progress,
        )


@dataclass(frozen=True)
class FlowsFile:
    """Every flow of one flows.yml, validated."""

    path: Path
    flows: dict[str, FlowSpec]

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def select(self, names: list[str] | None) -> list[str]:
        """The flows to run: all, or the named ones (unknown names are an error)."""
        if not names:
            return list(self.flows)
        for name in names:
            if name not in self.flows:
                raise ConfigError(
                    f"no flow named '{name}'",
                    file=str(self.path),
                    hint=_choices_hint(name, list(self.flows), "flows"),
                )
        return list(dict.fromkeys(names))

    def waves(self, names: list[str] | None = None) -> list[list[str]]:
        selected = self.select(names)
        return waves({n: self.flows[n].options.depends_on for n in selected})


@dataclass
class _Source:
    """Where parsing is: for messages and line numbers."""

    file: str
    located: yamlpos.Located | None
    base_dir: Path
    env: Mapping[str, str] | None
    flow: str | None = None
    # What the file's flows write: store path -> (flow, store type). A home reading one of
    # them takes its type from there, since the data does not exist before that flow runs.
    produced: dict[Path, tuple[str, str]] = field(default_factory=dict)

    def error(
        self,
        message: str,
        path: tuple[Any, ...] = (),
        key: str | None = None,
        hint: str | None = None,
    ) -> ConfigError:
        line = self.located.line(path) if self.located else None
        return ConfigError(message, file=self.file, line=line, flow=self.flow, key=key, hint=hint)


def load(
    path: str | os.PathLike[str], env: Mapping[str, str] | None = None, resolve: bool = True
) -> FlowsFile:
    """Read and validate a flows.yml. `resolve=False` leaves `${VAR}` as written (enqueue)."""
    file = Path(path)
    label = str(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "file not found", file=label, hint="check the path to your flows file"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the file: {exc}", file=label) from None
    return parse(
        text,
        label,
        base_dir=file.resolve().parent,
        env=(os.environ if env is None else env) if resolve else None,
    )


def parse(
    text: str,
    file: str = "<flows.yml>",
    *,
    base_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> FlowsFile:
    """Validate flows.yml text. `env=None` leaves variables unresolved."""
    try:
        located = yamlpos.load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"not valid YAML: {problem}",
            file=file,
            line=mark.line + 1 if mark else None,
            hint="check indentation and quoting around that line",
        ) from None
    source = _Source(file, located, base_dir or Path.cwd(), env)
    data = located.data
    if data is None:
        raise source.error("the file is empty", hint="add a `flows:` section")
    if not isinstance(data, dict):
        raise source.error("the top level must be a mapping with a `flows:` section")
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise source.error(
                f"unknown section '{key}'",
                (key,),
                hint=_choices_hint(str(key), list(TOP_LEVEL_KEYS), "sections"),
            )
    named = {
        kind: _mapping(source, data.get(f"{kind}s") or {}, (f"{kind}s",))
        for kind in ("home", "store")
    }
    flows_data = _mapping(source, data.get("flows"), ("flows",))
    if not flows_data:
        raise source.error(
            "no flows defined", ("flows",), hint="add at least one flow under `flows:`"
        )

    inlined = {}
    for name, body in flows_data.items():
        source.flow = str(name)
        inlined[str(name)] = _inline(source, str(name), body, named)
    source.produced = _produced_paths(source, inlined)
    flows: dict[str, FlowSpec] = {}
    for name, (raw, origins) in inlined.items():
        source.flow = name
        flows[name] = spec = _parse_flow(source, name, raw, origins)
        if _upstream_of(source, getattr(spec.home.settings, "path", None) or ""):
            # The queue form carries the type: a worker parses one flow, without the others.
            home = raw["home"] if isinstance(raw["home"], dict) else {"path": raw["home"]}
            raw["home"] = {"type": spec.home.type_name, **home}
    source.flow = None
    _check_dependencies(source, flows)
    _check_upstream_dependencies(source, flows)
    return FlowsFile(Path(file), flows)


def _produced_paths(
    source: _Source, inlined: dict[str, tuple[dict[str, Any], dict[str, tuple[Any, ...]]]]
) -> dict[Path, tuple[str, str]]:
    """The folder each flow's file store writes, with the store's type. A store that does not
    parse is skipped here: the full parse that follows reports it where it belongs."""
    produced: dict[Path, tuple[str, str]] = {}
    for name, (raw, origins) in inlined.items():
        source.flow = name
        try:
            store = _parse_connector(
                source, "store", name, raw["store"], origins["store"], FlowOptions()
            )
        except ConfigError:
            continue
        path = getattr(store.settings, "path", None)
        if isinstance(path, str) and "://" not in path:
            produced[_absolute(source, path)] = (name, store.type_name)
    return produced


def _absolute(source: _Source, path: str) -> Path:
    return Path(os.path.normpath(Path(source.base_dir) / path))


def _upstream_of(source: _Source, path: str) -> tuple[str, str] | None:
    """(flow, type) of the flow of this file whose store writes `path` (or a folder above it)."""
    if not path or "://" in path:
        return None
    target = _absolute(source, path)
    for folder in (target, *target.parents):
        if folder in source.produced:
            return source.produced[folder]
    return None


def _check_upstream_dependencies(source: _Source, flows: dict[str, FlowSpec]) -> None:
    """A flow that reads what another flow writes must run after it: say so, not race it."""
    for name, spec in flows.items():
        upstream = _upstream_of(source, getattr(spec.home.settings, "path", None) or "")
        if upstream is None or upstream[0] == name:
            continue
        pending, seen = list(spec.options.depends_on), set()
        while pending and upstream[0] not in seen:
            dep = pending.pop()
            if dep not in seen and dep in flows:
                seen.add(dep)
                pending.extend(flows[dep].options.depends_on)
        if upstream[0] not in seen:
            source.flow = name
            raise source.error(
                f"the home reads what flow '{upstream[0]}' writes, but does not depend on it",
                ("flows", name),
                key="options.depends_on",
                hint=f"add `depends_on: {upstream[0]}` under the flow's `options:` (it runs after)",
            )


def parse_flow(
    name: str, raw: dict[str, Any], *, base_dir: str | Path, env: Mapping[str, str]
) -> FlowSpec:
    """Validate one raw (queue) flow where it will run, resolving variables from `env`."""
    source = _Source("", None, Path(base_dir), env)  # errors name the flow; no file here
    return _parse_flow(source, name, raw, {"home": ("home",), "store": ("store",)})


def _inline(
    source: _Source, name: str, body: Any, named: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, tuple[Any, ...]]]:
    """The flow with named homes/stores copied in; `origins` says where each came from."""
    here = ("flows", name)
    if not isinstance(body, dict):
        raise source.error("a flow must be a mapping with `home:` and `store:`", here)
    raw = dict(body)
    origins: dict[str, tuple[Any, ...]] = {}
    for kind in ("home", "store"):
        if kind not in raw:
            raise source.error(
                f"missing required key '{kind}'",
                here,
                key=kind,
                hint=f"name a {kind} from `{kind}s:`, or give a path or URL",
            )
        ref = raw[kind]
        if isinstance(ref, str) and ref in named[kind]:
            raw[kind] = named[kind][ref]
            origins[kind] = (f"{kind}s", ref)
        elif isinstance(ref, str) and _looks_like_typo(source, kind, ref, named[kind]):
            raise source.error(
                f"no {kind} named '{ref}' (and it is not a path or URL)",
                (*here, kind),
                key=kind,
                hint=_choices_hint(ref, list(named[kind]), f"{kind}s")
                if named[kind]
                else f"define it under `{kind}s:`, or give a path with an extension",
            )
        else:
            origins[kind] = (*here, kind)
    return raw, origins


def _parse_flow(
    source: _Source, name: str, raw: dict[str, Any], origins: dict[str, tuple[Any, ...]]
) -> FlowSpec:
    source.flow = name
    flow_path = ("flows", name) if source.located else ()
    flow_settings = {k: v for k, v in raw.items() if k not in ("home", "store")}
    options_raw = _merge_options(
        source, flow_settings, flow_path, set(FlowOptions.model_fields), "flow"
    )
    options_raw = _resolve(source, options_raw, flow_path)
    options = _validate(source, FlowOptions, options_raw, flow_path, "flow option")
    home = _parse_connector(source, "home", name, raw["home"], origins["home"], options)
    store = _parse_connector(source, "store", name, raw["store"], origins["store"], options)
    if (
        options.incremental
        and "mode" in store.settings.model_fields_set
        and getattr(store.settings, "mode", None) == "replace"
    ):
        raise source.error(
            "an incremental flow cannot replace its store on every run",
            (*origins["store"], "mode"),
            key="store.mode",
            hint="remove `mode: replace` (incremental appends, or merges with `key`); "
            "use --full-refresh to reload everything once",
        )
    return FlowSpec(name, home, store, options, raw)


def _parse_connector(
    source: _Source, kind: str, flow: str, spec: Any, origin: tuple[Any, ...], options: FlowOptions
) -> ConnectorSpec:
    if isinstance(spec, str):
        spec = {"path": spec} if "://" not in spec else {"connection": spec}
    if not isinstance(spec, dict):
        raise source.error(f"a {kind} must be a name, a path, a URL or a mapping", origin, key=kind)
    spec = dict(spec)
    type_name = spec.pop("type", None)
    cls_names = registry.names(kind)
    settings_raw = _merge_options(source, spec, origin, None, kind)
    resolved = _resolve(source, settings_raw, origin)
    if type_name is None:
        type_name = _infer_type(source, kind, resolved, origin)
    cls = registry.lookup(kind, str(type_name))
    if cls is None:
        raise source.error(
            f"unknown {kind} type '{type_name}'",
            (*origin, "type"),
            key=f"{kind}.type",
            hint=_choices_hint(str(type_name), cls_names, "types"),
        )
    if (
        "batch_size" in cls.Settings.model_fields
        and "batch_size" not in resolved
        and options.batch_size
    ):
        resolved["batch_size"] = options.batch_size
    settings = _validate(source, cls.Settings, resolved, origin, kind)
    return ConnectorSpec(
        kind, flow if origin[0] == "flows" else str(origin[-1]), str(type_name), settings
    )


def _merge_options(
    source: _Source,
    spec: dict[str, Any],
    origin: tuple[Any, ...],
    allowed: set[str] | None,
    what: str,
) -> dict[str, Any]:
    """Fold `options:` into the top level; the same key in both places must agree."""
    try:
        spec = fold_options(spec)
    except OptionsConflict as exc:
        if exc.key is None:
            raise source.error(
                "`options` must be a mapping", (*origin, "options"), key=f"{what}.options"
            ) from None
        raise source.error(
            f"'{exc.key}' is set both at the top level and under options, differently",
            (*origin, "options", exc.key),
            key=f"{what}.{exc.key}",
            hint="keep one of them",
        ) from None
    if allowed is not None:
        for key in spec:
            if key not in allowed and key not in FLOW_KEYS:
                raise source.error(
                    f"unknown key '{key}'",
                    (*origin, key),
                    key=f"{what}.{key}",
                    hint=_choices_hint(str(key), sorted(allowed), "keys"),
                )
    return spec


def _resolve(source: _Source, value: dict[str, Any], origin: tuple[Any, ...]) -> dict[str, Any]:
    if source.env is None:
        return dict(value)
    try:
        return interpolate(value, source.env)
    except UndefinedVariable as exc:
        raise source.error(
            f"environment variable {exc.name} is not set",
            (*origin, *exc.path),
            key=".".join(str(p) for p in exc.path) or None,
            hint=f"export {exc.name}=..., or give a default: ${{{exc.name}:-value}}",
        ) from None


def _infer_type(
    source: _Source, kind: str, settings: dict[str, Any], origin: tuple[Any, ...]
) -> str:
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
    if "://" in target:
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
        upstream = _upstream_of(source, target)
        if upstream is not None and upstream[1] in classes:
            return upstream[1]  # what another flow of this file writes there
        found = _type_of_folder(Path(source.base_dir) / target, classes)
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


def _validate(
    source: _Source,
    model: type[BaseModel],
    data: dict[str, Any],
    origin: tuple[Any, ...],
    what: str,
) -> Any:
    try:
        return model.model_validate(data, context={"base_dir": str(source.base_dir)})
    except PydanticValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc)
        fields = sorted(model.model_fields)
        path = (
            (*origin, *loc)
            if (*origin, *loc) in (source.located.lines if source.located else {})
            else (*origin, "options", *loc)
        )
        if err["type"] == "extra_forbidden":
            raise source.error(
                f"unknown key '{key}'",
                path,
                key=f"{what}.{key}",
                hint=_choices_hint(str(loc[-1]), fields, "keys"),
            ) from None
        if err["type"] == "missing":
            raise source.error(
                f"missing required key '{key}'",
                (*origin,),
                key=f"{what}.{key}",
                hint=_field_hint(model, str(loc[0])),
            ) from None
        hint = None
        if err["type"] == "literal_error" and isinstance(err.get("input"), str):
            choices = [
                str(c)
                for c in (err.get("ctx") or {})
                .get("expected", "")
                .replace("'", "")
                .replace(" or ", ", ")
                .split(", ")
                if c
            ]
            hint = _choices_hint(err["input"], choices, "values")
        raise source.error(
            f"{err['msg']} (got {err.get('input')!r})", path, key=f"{what}.{key}", hint=hint
        ) from None


def _field_hint(model: type[BaseModel], name: str) -> str | None:
    info = model.model_fields.get(name)
    return info.description if info is not None and info.description else None


def _check_dependencies(source: _Source, flows: dict[str, FlowSpec]) -> None:
    for name, spec in flows.items():
        source.flow = name
        for dep in spec.options.depends_on:
            if dep not in flows:
                raise source.error(
                    f"depends on unknown flow '{dep}'",
                    ("flows", name, "options", "depends_on"),
                    key="depends_on",
                    hint=_choices_hint(dep, list(flows), "flows"),
                )
    source.flow = None
    cycle = find_cycle({n: s.options.depends_on for n, s in flows.items()})
    if cycle:
        raise source.error(
            f"depends_on forms a cycle: {' -> '.join(cycle)}",
            ("flows", cycle[0]),
            hint="remove one of these dependencies",
        )


def _looks_like_typo(source: _Source, kind: str, ref: str, named: dict[str, Any]) -> bool:
    """A bare word such as `userz` that is no named home/store: a typo, not a path.

    A bare word may still be a folder (`store: lake`): for a home it must exist, for a store
    it is taken as a path unless it is close to a defined store's name.
    """
    if any(c in ref for c in "/.:\\*?${"):
        return False
    if kind == "home":
        return not (source.base_dir / ref).exists()
    return registry.suggest(ref, list(named)) is not None


def _mapping(source: _Source, value: Any, path: tuple[Any, ...]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise source.error(f"`{path[-1]}` must be a mapping of names to definitions", path)
    return value


def _choices_hint(word: str, choices: list[str], what: str) -> str:
    near = registry.suggest(word, choices)
    listing = f"valid {what}: {', '.join(choices)}"
    return f"did you mean '{near}'? ({listing})" if near else listing
