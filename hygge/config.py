"""flows.yml -> validated flow specs.

Accepts the three forms (explicit, shorthand paths/URLs, named homes and stores), mixed
freely; a setting may stand at the top level of a home/store or under its `options:`.
`${VAR}` / `${VAR:-default}` are resolved from the environment. Every error names the file,
the line, the flow and the key, and suggests the nearest valid choice.

A flow also exists in a *raw* form: self-contained (named homes/stores inlined) with `${VAR}`
left unresolved. That is what travels on a queue, so secrets never leave the worker's
environment; `parse_flow` turns it into a spec where it runs.

Helpers: `hygge/shorthand.py` infers types from paths and URLs; `hygge/config_source.py`
turns every problem into a ConfigError naming the file and line; `hygge/entities/` expands a
definition with entities into flows `<flow>.<entity>` between parsing and validation.

Over 400 lines: the one parse of flows.yml (forms, named refs, options, entity
expansion, the queue's raw form) reads top to bottom in one place; cross-flow checks live in
`hygge/config_checks.py`, shorthand in `hygge/shorthand.py`.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hygge import config_checks as checks
from hygge import config_quality, entities, partitions, registry, yamlpos
from hygge import schedule as schedules
from hygge.config_source import Source, choices_hint, validate
from hygge.contract import (
    Connector,
    ConnectorSettings,
    Home,
    OptionsConflict,
    Store,
    fold_options,
)
from hygge.errors import ConfigError, ConfigErrors
from hygge.interpolate import UndefinedVariable, interpolate
from hygge.plan import waves
from hygge.shorthand import absolute, infer_type, looks_like_typo, upstream_of
from hygge.storage.location import is_object_url

if TYPE_CHECKING:
    from hygge.gate import Quality
    from hygge.report import ProgressCallback
    from hygge.run.context import RunContext
    from hygge.run.move import Flow
    from hygge.run.parts import PartitionedFlow

TOP_LEVEL_KEYS = ("homes", "stores", "flows")
# A flow's name becomes part of file names (state, locks) and Redis keys: keep it plain.
FLOW_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}")
FLOW_KEYS = ("home", "store", "options")
# A flow's shape and checks (hygge/config_quality.py parses them).
QUALITY_KEYS = ("shape", "checks", "on_check_failure", "quarantine", "secret_columns")


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
    partitions: int | Literal["auto"] | None = Field(
        None, description="Split the flow into N parts read concurrently (or `auto`: cores)."
    )
    ranges: list[list[Any]] | None = Field(
        None, description="Partitions as [[low, high], ...] of `partition_on` (half-open)."
    )
    parallel: int | None = Field(
        None, gt=0, description="Partitions of this flow read at once (default: cores)."
    )
    schedule: str | None = Field(
        None, description='`hygge scheduler`: when to send it, cron in UTC ("*/15 * * * *").'
    )
    every: str | None = Field(
        None, description="`hygge scheduler`: send it at this interval (10m, 1h30m, 90s)."
    )

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else schedules.check_cron(value)

    @field_validator("every", mode="before")
    @classmethod
    def _interval(cls, value: Any) -> Any:
        if value is not None:
            schedules.parse_every(value)
        return None if value is None else str(value)

    @property
    def scheduled(self) -> schedules.Schedule | None:
        """When `hygge scheduler` sends this flow (None: only when someone runs it)."""
        if self.schedule is not None:
            return schedules.Schedule(cron=self.schedule)
        if self.every is not None:
            return schedules.Schedule(interval=schedules.parse_every(self.every))
        return None

    @field_validator("depends_on", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("partitions", mode="before")
    @classmethod
    def _positive_or_auto(cls, value: Any) -> Any:
        if value is None or value == "auto":
            return value
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"partitions must be a whole number of 1 or more, or `auto` (not {value!r})"
            )
        return value

    @field_validator("ranges")
    @classmethod
    def _contiguous(cls, value: Any) -> Any:
        problem = None if value is None else partitions.ranges_problem(value)
        if problem:
            raise ValueError(
                f"{problem}; ranges must follow each other, each [low, high) "
                "starting where the previous one ends"
            )
        return value

    @property
    def partitioned(self) -> bool:
        return self.partitions is not None or self.ranges is not None


@dataclass(frozen=True)
class ConnectorSpec:
    """A validated home or store: which class, with which settings."""

    kind: str
    name: str
    type_name: str
    settings: ConnectorSettings

    @property
    def cls(self) -> type[Connector[Any]]:
        found = registry.lookup(self.kind, self.type_name)
        assert found is not None
        return found

    @property
    def path(self) -> str | None:
        """The file path or URL it reads or writes (the connector says: `path_of`)."""
        return self.cls.path_of(self.settings)

    @property
    def mode(self) -> str | None:
        """How a store writes (the connector says: `mode_of`)."""
        return self.cls.mode_of(self.settings)

    def build(self) -> Connector[Any]:
        return self.cls(self.name, self.settings)


@dataclass(frozen=True)
class FlowSpec:
    """A validated flow, ready to build; `raw` is its queue-safe form (variables unresolved)."""

    name: str
    home: ConnectorSpec
    store: ConnectorSpec
    options: FlowOptions
    raw: dict[str, Any] = field(repr=False)
    quality: Quality | None = None  # `shape:` and `checks:` (hygge/gate.py)
    quarantine: ConnectorSpec | None = None  # where `on_check_failure: quarantine` sets rows

    def build(
        self,
        on_progress: ProgressCallback | None = None,
        full_refresh: bool = False,
        *,
        context: RunContext | None = None,
    ) -> Flow | PartitionedFlow:
        """The runnable flow, configured for the runner that runs it (`context`: where
        progress goes, its fence, retries, lock wait, board; `on_progress` alone is a
        shortcut). An incremental flow appends (or merges) what is new; with `full_refresh`
        it forgets its state and replaces the destination."""
        from hygge.run.context import RunContext
        from hygge.run.move import Flow
        from hygge.run.parts import PartitionedFlow

        if context is None:
            context = RunContext(on_progress=on_progress)
        store = self.store
        if self.options.incremental:
            mode = store.mode
            if full_refresh:
                mode = "replace"
            elif mode == "replace":
                mode = "append"
            if mode is not None:
                store = replace(store, settings=store.settings.model_copy(update={"mode": mode}))
        home = cast(Home[Any], self.home.build())
        new_store = cast(Callable[[], Store[Any]], store.build)
        quality = None
        if self.quality is not None:  # audit columns: this run's id and start time
            from hygge.shape import AuditValues

            run_id = context.run_id or uuid.uuid4().hex[:12]
            quality = replace(self.quality, audit=AuditValues.now(run_id))
        # What a plain and a partitioned flow take alike.
        common: dict[str, Any] = {
            "name": self.name,
            "queue_size": self.options.queue_size,
            "retries": self.options.retries if context.own_retries else 0,
            "retry_delay": self.options.retry_delay,
            "incremental": self.options.incremental,
            "full_refresh": full_refresh,
        }
        if self.options.partitioned:
            return PartitionedFlow(
                home,
                new_store,
                partitions=self.options.partitions,
                ranges=self.options.ranges,
                parallel=self.options.parallel,
                context=context,
                quality=quality,
                **common,
            )
        return Flow(
            home,
            new_store(),
            on_progress=context.on_progress,
            before_commit=context.fence,
            wait_for_lock=context.wait_for_lock,
            gate=quality.gate() if quality is not None else None,
            **common,
        )


@dataclass(frozen=True)
class FlowsFile:
    """Every flow of one flows.yml, validated."""

    path: Path
    flows: dict[str, FlowSpec]
    # definitions with entities, by name: what was discovered; their flows are in `flows`
    entity_sets: dict[str, entities.EntitySet] = field(default_factory=dict)
    # definitions left undiscovered (`discover=False`): a worker discovers them
    deferred: tuple[str, ...] = ()

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def select(self, names: list[str] | None) -> list[str]:
        """The flows to run: all, or the named ones; a definition's name selects all of its
        entities (unknown names are an error)."""
        if not names:
            return list(self.flows)
        chosen: list[str] = []
        for name in names:
            if name in self.flows:
                chosen.append(name)
            elif name in self.entity_sets:
                chosen += self.entity_sets[name].flows
            else:
                raise ConfigError(
                    f"no flow named '{name}'",
                    file=str(self.path),
                    hint=choices_hint(name, [*self.flows, *self.entity_sets], "flows"),
                )
        return list(dict.fromkeys(chosen))

    def waves(self, names: list[str] | None = None) -> list[list[str]]:
        selected = self.select(names)
        return waves({n: self.flows[n].options.depends_on for n in selected})


def load(
    path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    resolve: bool = True,
    discover: bool = True,
) -> FlowsFile:
    """Read and validate a flows.yml. `resolve=False` leaves `${VAR}` as written (enqueue);
    `discover=False` leaves definitions with entities undiscovered (`FlowsFile.deferred`)."""
    return parse(
        read(path),
        str(path),
        base_dir=Path(path).resolve().parent,
        env=(os.environ if env is None else env) if resolve else None,
        discover=discover,
    )


def read(path: str | os.PathLike[str]) -> str:
    """The text of a flows.yml, or a ConfigError saying why it cannot be read."""
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
    return text


def parse(
    text: str,
    file: str = "<flows.yml>",
    *,
    base_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    discover: bool = True,
) -> FlowsFile:
    """Validate flows.yml text. `env=None` leaves variables unresolved; `discover=False`
    leaves definitions with entities out (their names in `deferred`), so nothing here needs
    the databases or storage they name."""
    try:
        located = yamlpos.load(text)
    except yamlpos.TooManyAliases as exc:
        raise ConfigError(
            str(exc),
            file=file,
            line=exc.line,
            hint="write the repeated parts out, or use fewer levels of aliases",
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"not valid YAML: {problem}",
            file=file,
            line=mark.line + 1 if mark else None,
            hint="check indentation and quoting around that line",
        ) from None
    source = Source(file, located, base_dir or Path.cwd(), env)
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
                hint=choices_hint(str(key), list(TOP_LEVEL_KEYS), "sections"),
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

    # Every problem, a flow's own and those across flows, is collected and reported together
    # (ConfigErrors, the first MAX_SHOWN), so a file with three mistakes takes one round.
    problems: list[ConfigError] = []
    inlined = {}
    for name, body in flows_data.items():
        source.flow = str(name)
        try:
            inlined[str(name)] = _inline(source, str(name), body, named)
        except ConfigError as exc:
            problems.append(exc)
    source.produced = _produced_paths(source, inlined)
    # Discovery looks with the variables resolved (the enqueuer's own environment when the
    # specs keep them unresolved); the flows it makes keep `${VAR}` as written.
    deferred: list[str] = []
    if discover:
        sets = _expand_entities(source, inlined, os.environ if env is None else env)
    else:
        sets, deferred = {}, [n for n, (raw, _) in inlined.items() if entities.is_definition(raw)]
    flows: dict[str, FlowSpec] = {}
    made_by: dict[str, tuple[str, str]] = {}  # an entity's flow -> (definition, entity)
    for name, (raw, origins) in inlined.items():
        source.flow = name
        if name in deferred:
            continue
        if name not in sets:
            try:
                flows[name] = spec = _parse_flow(source, name, raw, origins)
            except ConfigError as exc:
                problems.append(exc)
                continue
            if upstream_of(source, spec.home.path or ""):
                # The queue form carries the type: a worker parses one flow, without the others.
                home = raw["home"] if isinstance(raw["home"], dict) else {"path": raw["home"]}
                raw["home"] = {"type": spec.home.type_name, **home}
            continue
        for entity in sets[name].entities:
            source.flow = name
            if entity.flow in inlined:
                problems.append(
                    source.error(
                        f"entity '{entity.name}' makes a flow named '{entity.flow}', but a "
                        "flow of that name is defined too",
                        ("flows", entity.flow),
                        hint="rename one of them",
                    )
                )
                continue
            if entity.flow in made_by:  # `crm` + table `a.b` and `crm.a` + table `b`
                other, other_entity = made_by[entity.flow]
                problems.append(
                    source.error(
                        f"entity '{entity.name}' makes a flow named '{entity.flow}', and so "
                        f"does entity '{other_entity}' of definition '{other}'; one of them "
                        "would never be moved",
                        ("flows", name),
                        hint="rename one of the definitions, or exclude the entity from one",
                    )
                )
                continue
            made_by[entity.flow] = (name, entity.name)
            at = ("flows", name)
            try:
                flows[entity.flow] = _parse_flow(source, entity.flow, entity.raw, origins, at)
            except ConfigError as exc:
                problems.append(exc)
    source.flow = None
    # The checks across flows look at the flows that parsed; a flow that did not is still a
    # name others may depend on (`defined`), so its own error is the only one it causes.
    flows = _expand_groups(flows, sets)
    defined = {*inlined, *made_by, *deferred}
    if not deferred:
        problems += checks.check_dependencies(source, flows, list(sets), defined)
    problems += checks.check_destinations(source, flows)
    problems += checks.check_upstream_dependencies(source, flows, defined)
    if problems:  # every problem of the file at once, in the file's order
        raise ConfigErrors.of(sorted(problems, key=lambda e: e.line or 0))
    return FlowsFile(Path(file), flows, sets, tuple(deferred))


def _expand_entities(
    source: Source, inlined: dict[str, Any], env: Mapping[str, str]
) -> dict[str, entities.EntitySet]:
    """Each definition with entities, discovered; a definition whose home reads what another
    writes is expanded after it (so it can take its entities, see hygge/entities/expand)."""
    graph = {
        name: [d.split(".", 1)[0] if d not in inlined else d for d in entities.depends_on(raw)]
        for name, (raw, _) in inlined.items()
    }
    try:
        order = [name for wave in waves(graph) for name in wave]
    except ValueError:  # a cycle: checks.check_dependencies reports it, with its flows
        order = list(inlined)
    sets: dict[str, entities.EntitySet] = {}
    for name in order:
        raw = inlined[name][0]
        if entities.is_definition(raw):
            source.flow = name
            sets[name] = entities.expand(
                source,
                name,
                raw,
                env=env,
                option_keys={*FlowOptions.model_fields, *QUALITY_KEYS},
                upstream=sets,
            )
    return {name: sets[name] for name in inlined if name in sets}


def _expand_groups(
    flows: dict[str, FlowSpec], sets: dict[str, entities.EntitySet]
) -> dict[str, FlowSpec]:
    """`depends_on: [crm]` waits for every entity of the definition `crm`."""
    out = {}
    for name, spec in flows.items():
        deps = spec.options.depends_on
        wide = [f for d in deps for f in (sets[d].flows if d in sets else [d])]
        if wide != deps:
            spec = replace(spec, options=spec.options.model_copy(update={"depends_on": wide}))
        out[name] = spec
    return out


def _produced_paths(
    source: Source, inlined: dict[str, tuple[dict[str, Any], dict[str, tuple[Any, ...]]]]
) -> dict[Path, tuple[str, str]]:
    """The folder each flow's file store writes, with the store's type. A store that does not
    parse is skipped here: the full parse that follows reports it where it belongs."""
    produced: dict[Path, tuple[str, str]] = {}
    for name, (raw, origins) in inlined.items():
        source.flow = name
        try:
            store = _parse_connector(
                source,
                "store",
                name,
                raw["store"],
                origins["store"],
                FlowOptions.model_validate({}),
            )
        except ConfigError:
            continue
        path = store.path
        if path and "://" not in path:
            produced[absolute(source, path)] = (name, store.type_name)
    return produced


def parse_flow(
    name: str, raw: dict[str, Any], *, base_dir: str | Path, env: Mapping[str, str]
) -> FlowSpec:
    """Validate one raw (queue) flow where it will run, resolving variables from `env`."""
    source = Source("", None, Path(base_dir), env)  # errors name the flow; no file here
    # Inline, as the queue carries them: the home and store are named after the flow, so
    # errors on a worker say `home 'users_to_lake'`, not `home 'home'`.
    origins = {kind: ("flows", name, kind) for kind in ("home", "store")}
    return _parse_flow(source, name, raw, origins)


def _inline(
    source: Source, name: str, body: Any, named: dict[str, dict[str, Any]]
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
        elif isinstance(ref, str) and looks_like_typo(source, kind, ref, named[kind]):
            raise source.error(
                f"no {kind} named '{ref}' (and it is not a path or URL)",
                (*here, kind),
                key=kind,
                hint=choices_hint(ref, list(named[kind]), f"{kind}s")
                if named[kind]
                else f"define it under `{kind}s:`, or give a path with an extension",
            )
        else:
            origins[kind] = (*here, kind)
    return raw, origins


def _parse_flow(
    source: Source,
    name: str,
    raw: dict[str, Any],
    origins: dict[str, tuple[Any, ...]],
    at: tuple[Any, ...] | None = None,
) -> FlowSpec:
    """Validate one flow; `at` is where it stands in the file when that is not under its own
    name (an entity's flow stands at its definition)."""
    source.flow = name
    flow_path = (at or ("flows", name)) if source.located else ()
    if not FLOW_NAME.fullmatch(name) or ".." in name:
        raise source.error(
            "a flow name may hold only letters, digits, '_', '-' and '.', must not start "
            "with '.' or '-' or hold '..', and has at most 200 characters",
            flow_path,
            hint="rename the flow, e.g. 'orders_to_lake'",
        )
    flow_settings = {k: v for k, v in raw.items() if k not in ("home", "store")}
    options_raw = _merge_options(
        source, flow_settings, flow_path, set(FlowOptions.model_fields), "flow"
    )
    quality_raw = {k: options_raw.pop(k) for k in QUALITY_KEYS if k in options_raw}
    resolved_options = _resolve(source, options_raw, flow_path)
    options = validate(source, FlowOptions, resolved_options, flow_path, "flow option", options_raw)
    home = _parse_connector(source, "home", name, raw["home"], origins["home"], options)
    store = _parse_connector(source, "store", name, raw["store"], origins["store"], options)
    if options.incremental:
        checks.check_incremental(source, home, origins["home"])
        checks.check_incremental(source, store, origins["store"])
        checks.check_incremental_mode(source, store, origins["store"])
    if (
        options.incremental
        and "mode" in store.settings.model_fields_set
        and store.mode == "replace"
    ):
        raise source.error(
            "an incremental flow cannot replace its store on every run",
            (*origins["store"], "mode"),
            key="store.mode",
            hint="remove `mode: replace` (incremental appends, or merges with `key`); "
            "use --full-refresh to reload everything once",
        )
    checks.check_partitions(source, options, home, store, origins, flow_path)
    checks.check_schedule(source, options, flow_path)
    quality = None
    quarantine_spec = None
    if quality_raw:
        quality_raw = _resolve(source, quality_raw, flow_path)
        quarantine = quality_raw.get("quarantine")
        if quarantine is not None:
            quarantine_spec = _parse_connector(
                source, "store", name, quarantine, (*flow_path, "quarantine"), options
            )
        quality = config_quality.parse(source, name, quality_raw, flow_path, options, home)
        if quarantine_spec is not None:
            checks.check_quarantine_parts(
                source, options, quarantine_spec, (*flow_path, "quarantine")
            )
            quality = replace(quality, quarantine=quarantine_spec.build)
    return FlowSpec(name, home, store, options, raw, quality, quarantine_spec)


def _parse_connector(
    source: Source, kind: str, flow: str, spec: Any, origin: tuple[Any, ...], options: FlowOptions
) -> ConnectorSpec:
    if isinstance(spec, str):
        spec = {"connection": spec} if "://" in spec and not is_object_url(spec) else {"path": spec}
    if not isinstance(spec, dict):
        raise source.error(f"a {kind} must be a name, a path, a URL or a mapping", origin, key=kind)
    spec = dict(spec)
    type_name = spec.pop("type", None)
    cls_names = registry.names(kind)
    settings_raw = _merge_options(source, spec, origin, None, kind)
    resolved = _resolve(source, settings_raw, origin)
    raw_settings = dict(settings_raw)
    if type_name is None:
        type_name = infer_type(source, kind, resolved, origin)
    cls = registry.lookup(kind, str(type_name))
    if cls is None:
        raise source.error(
            f"unknown {kind} type '{type_name}'",
            (*origin, "type"),
            key=f"{kind}.type",
            hint=choices_hint(str(type_name), cls_names, "types"),
        )
    if (
        "batch_size" in cls.Settings.model_fields
        and "batch_size" not in resolved
        and options.batch_size
    ):
        resolved["batch_size"] = options.batch_size
    settings = validate(source, cls.Settings, resolved, origin, kind, raw_settings)
    return ConnectorSpec(
        kind, flow if origin[0] == "flows" else str(origin[-1]), str(type_name), settings
    )


def _merge_options(
    source: Source,
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
            if key not in allowed and key not in FLOW_KEYS and key not in QUALITY_KEYS:
                raise source.error(
                    f"unknown key '{key}'",
                    (*origin, key),
                    key=f"{what}.{key}",
                    hint=choices_hint(str(key), sorted(allowed), "keys"),
                )
    return spec


def _resolve(source: Source, value: dict[str, Any], origin: tuple[Any, ...]) -> dict[str, Any]:
    if source.env is None:
        return dict(value)
    try:
        resolved: dict[str, Any] = interpolate(value, source.env)
        return resolved
    except UndefinedVariable as exc:
        raise source.error(
            f"environment variable {exc.name} is not set",
            (*origin, *exc.path),
            key=".".join(str(p) for p in exc.path) or None,
            hint=f"export {exc.name}=..., or give a default: ${{{exc.name}:-value}}",
        ) from None


def _mapping(source: Source, value: Any, path: tuple[Any, ...]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise source.error(f"`{path[-1]}` must be a mapping of names to definitions", path)
    return value
