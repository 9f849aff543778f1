"""The checks of flows.yml that look across flows or at a connector's abilities: dependencies
(`depends_on`), two flows writing one destination, a chained home without `depends_on`,
incremental and partitioned flows on connectors that can do them. Each makes a ConfigError
naming the file, line, flow and key (through `Source`): the checks of one flow raise it, the
checks across flows return every problem they find (flows.yml reports them all at once).
Kept apart from `hygge.config`, which parses; these only judge what it parsed."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from hygge import contract, registry
from hygge.config_source import Source, choices_hint
from hygge.contract import MultiPartStore, Store, StoreSettings
from hygge.errors import ConfigError
from hygge.plan import find_cycle
from hygge.shorthand import upstream_of

if TYPE_CHECKING:
    from hygge.config import ConnectorSpec, FlowOptions, FlowsFile, FlowSpec


def check_upstream_dependencies(
    source: Source, flows: dict[str, FlowSpec], defined: Collection[str] = ()
) -> list[ConfigError]:
    """A flow that reads what another flow writes must run after it: say so, not race it.
    `defined`: every flow of the file, those that did not parse too (reported on their own;
    a dependency through one of them is taken as given)."""
    problems = []
    for name, spec in flows.items():
        upstream = upstream_of(source, spec.home.path or "")
        if upstream is None or upstream[0] == name:
            continue
        if upstream[0] not in flows and upstream[0] in defined:
            continue  # the upstream flow did not parse: its own error says why
        pending, seen = list(spec.options.depends_on), set()
        while pending and upstream[0] not in seen:
            dep = pending.pop()
            if dep in seen:
                continue
            if dep in flows:
                seen.add(dep)
                pending.extend(flows[dep].options.depends_on)
            elif dep in defined:  # did not parse: what it depends on is unknown, take it as given
                seen.add(upstream[0])
        if upstream[0] not in seen:
            source.flow = name
            problems.append(
                source.error(
                    f"the home reads what flow '{upstream[0]}' writes, but does not depend on it",
                    ("flows", name),
                    key="options.depends_on",
                    hint=f"add `depends_on: {upstream[0]}` under the flow's `options:` (it "
                    "runs after)",
                )
            )
    source.flow = None
    return problems


def check_partitions(
    source: Source,
    options: FlowOptions,
    home: ConnectorSpec,
    store: ConnectorSpec,
    origins: dict[str, tuple[Any, ...]],
    flow_path: tuple[Any, ...],
) -> None:
    """`partitions:` needs a home that can split and a store that takes parts; `ranges:` and
    `partition_on` go together. Said at validate time, before anything is enqueued or read."""
    partition_on = home.cls.partition_column_of(home.settings)
    if not options.partitioned:
        if partition_on:
            raise source.error(
                "partition_on is set but the flow has no `partitions:`",
                (*origins["home"], "partition_on"),
                key="home.partition_on",
                hint="add `options: {partitions: 8}` (or `auto`, or `ranges:`) to the flow, "
                "or remove partition_on",
            )
        return
    where = (*flow_path, "options") if flow_path else ()
    if (
        options.ranges is not None
        and isinstance(options.partitions, int)
        and options.partitions != len(options.ranges)
    ):
        raise source.error(
            f"partitions: {options.partitions} but {len(options.ranges)} ranges are given",
            where,
            key="options.partitions",
            hint="give one of them (the ranges are the partitions)",
        )
    for spec, able, problem in (
        (home, contract.can_split, "cannot split into partitions"),
        (store, contract.takes_parts, "cannot take parts staged by several processes"),
    ):
        if able(registry.lookup(spec.kind, spec.type_name)):
            continue
        choices = sorted(n for n, cls in registry.all_classes(spec.kind).items() if able(cls))
        raise source.error(
            f"partitions are set, but {spec.kind} type '{spec.type_name}' {problem}",
            origins[spec.kind],
            key=f"{spec.kind}.type",
            hint=f"use a {spec.kind} that can ({', '.join(choices)}), or remove "
            "`partitions:`/`ranges:`",
        )
    store_cls = registry.lookup(store.kind, store.type_name)
    assert store_cls is not None and issubclass(store_cls, MultiPartStore)  # checked above
    refused = store_cls.parts_problem(store.settings)
    if refused:
        raise source.error(
            f"partitions are set, but {store.type_name} store '{store.name}' {refused}",
            origins["store"],
            key="store.path",
            hint="change the store setting named above, or remove `partitions:`",
        )
    home_fields = type(home.settings).model_fields
    if "partition_on" in home_fields and not partition_on:
        raise source.error(
            f"partitions are set, but {home.type_name} home '{home.name}' has no partition_on",
            origins["home"],
            key="home.partition_on",
            hint="name the integer, date or timestamp column to split by, e.g. `partition_on: id`",
        )
    if options.ranges is not None and "partition_on" not in home_fields:
        raise source.error(
            f"ranges: split a column's values, but {home.type_name} home '{home.name}' has "
            "no columns to range (it splits by files)",
            where,
            key="options.ranges",
            hint="use `partitions: N` or `partitions: auto`",
        )


ABILITY = {
    "home": (contract.can_resume, "cannot load incrementally (it cannot resume)"),
    "store": (contract.keeps_state, "cannot keep incremental state with its data"),
}


def check_incremental(source: Source, spec: ConnectorSpec, origin: tuple[Any, ...]) -> None:
    """`incremental: true` needs a home that can resume and a store that keeps state: say so
    at validate time, not halfway through a run."""
    able, problem = ABILITY[spec.kind]
    if able(registry.lookup(spec.kind, spec.type_name)):
        return
    choices = sorted(n for n, cls in registry.all_classes(spec.kind).items() if able(cls))
    raise source.error(
        f"incremental: true, but {spec.kind} type '{spec.type_name}' {problem}",
        origin,
        key=spec.kind,
        hint=f"use a {spec.kind} that can ({', '.join(choices)}), or remove `incremental: true`",
    )


def check_incremental_mode(source: Source, store: ConnectorSpec, origin: tuple[Any, ...]) -> None:
    """A store mode that needs the whole table on every run (`whole_table_modes`: Open
    Mirroring's `snapshot` emits deletes for every key it did not see) is refused for an
    incremental flow, which reads only what changed: said at validate time, before a run."""
    mode = store.mode
    if mode is None or mode not in getattr(store.cls, "whole_table_modes", ()):
        return
    raise source.error(
        f"an incremental flow reads only what changed, so `mode: {mode}` of {store.type_name} "
        "store would delete every other row",
        (*origin, "mode"),
        key="store.mode",
        hint="remove `mode:` (an incremental flow appends; soft_delete maps a column to "
        "deletes), or remove `incremental: true` to read the whole table every run",
    )


def check_dependencies(
    source: Source,
    flows: dict[str, FlowSpec],
    groups: list[str] | None = None,
    defined: Collection[str] = (),
) -> list[ConfigError]:
    """Every `depends_on` names a flow of the file (`defined`: those that did not parse
    too), and they form no cycle."""
    problems = []
    for name, spec in flows.items():
        source.flow = name
        for dep in spec.options.depends_on:
            if dep not in flows and dep not in defined:
                problems.append(
                    source.error(
                        f"depends on unknown flow '{dep}'",
                        ("flows", name, "options", "depends_on"),
                        key="depends_on",
                        hint=choices_hint(dep, [*flows, *(groups or [])], "flows"),
                    )
                )
    source.flow = None
    cycle = find_cycle({n: s.options.depends_on for n, s in flows.items()})
    if cycle:
        problems.append(
            source.error(
                f"depends_on forms a cycle: {' -> '.join(cycle)}",
                ("flows", cycle[0]),
                hint="remove one of these dependencies",
            )
        )
    return problems


def check_destinations(source: Source, flows: dict[str, FlowSpec]) -> list[ConfigError]:
    """Two flows writing one place would replace each other's data (and race to create it):
    refused unless every one of them adds to it by design (`mode: append`, or `merge`).
    One problem per shared destination."""
    problems = []
    writers: dict[str, list[str]] = {}
    for name, spec in flows.items():
        try:
            store = spec.store.build()
        except Exception:  # a store that cannot be built fails later, with its own error
            continue
        where = store.destination() if isinstance(store, Store) else None
        if where is not None:
            writers.setdefault(where, []).append(name)
    for names in writers.values():
        if len(names) < 2 or all(adds_by_design(flows[n]) for n in names):
            continue
        first, second = names[0], names[1]
        lines = [source.located.line(("flows", n)) if source.located else None for n in names]
        places = ", ".join(
            f"'{n}'" + (f" (line {line})" if line else "")
            for n, line in zip(names, lines, strict=True)
        )
        source.flow = second
        store = flows[second].store.build()
        problems.append(
            source.error(
                f"flows {places} all write {store.describe()}; each run would replace the "
                f"data of the other (flow '{first}')",
                ("flows", second),
                key="store",
                hint="give each flow its own store, or set `mode: append` on every one of "
                "them if they add to one destination by design",
            )
        )
    source.flow = None
    return problems


def adds_by_design(spec: FlowSpec) -> bool:
    shared = getattr(spec.store.cls, "shared_modes", ("append",))
    return "mode" in spec.store.settings.model_fields_set and spec.store.mode in shared


def check_quarantine_parts(
    source: Source, options: FlowOptions, quarantine: ConnectorSpec, at: tuple[Any, ...]
) -> None:
    """A partitioned flow's parts each stage their failing rows as a part of the quarantine
    store, published with the data's parts: so that store must take parts too."""
    if not options.partitioned:
        return
    cls = registry.lookup(quarantine.kind, quarantine.type_name)
    if not contract.takes_parts(cls):
        choices = sorted(
            n for n, c in registry.all_classes("store").items() if contract.takes_parts(c)
        )
        raise source.error(
            f"a partitioned flow quarantines into parts, but store type "
            f"'{quarantine.type_name}' cannot take parts staged by several processes",
            at,
            key="quarantine",
            hint=f"quarantine into a store that can ({', '.join(choices)})",
        )
    problem = cls.parts_problem(quarantine.settings)  # type: ignore[union-attr]
    if problem:
        raise source.error(
            f"a partitioned flow quarantines into parts, but {quarantine.type_name} store "
            f"'{quarantine.name}' {problem}",
            at,
            key="quarantine",
            hint="change the quarantine store's setting named above",
        )


def check_for_workers(file: FlowsFile, names: list[str]) -> None:
    """What `hygge enqueue` (and `hygge validate --workers`) refuse before sending anything:
    a partitioned flow whose parts stage on a local path the workers do not share. Each
    partition may run on another machine, and the commit must read every part; so a local
    path is accepted only when the store says every worker mounts it (`shared_volume: true`)."""
    for name in names:
        spec = file.flows[name]
        if not spec.options.partitioned:
            continue
        for key, store in (("store", spec.store), ("quarantine", spec.quarantine)):
            if store is not None:
                _check_shared(file, name, key, store)


def _check_shared(file: FlowsFile, name: str, key: str, store: ConnectorSpec) -> None:
    """A partitioned flow's store (or quarantine store) is one every worker reaches."""
    settings = store.settings
    if isinstance(settings, StoreSettings) and settings.shared_volume:
        return
    cls = registry.lookup(store.kind, store.type_name)
    if not isinstance(cls, type) or not issubclass(cls, contract.MultiPartStore):
        return
    path = cls.local_parts_path(settings)
    if path is None or "${" in path:  # a variable only the workers resolve: they judge
        return
    raise ConfigError(
        f"partitioned, its {'' if key == 'store' else 'quarantine '}parts stage under the "
        f"local path {path}, which other workers cannot read; nothing was enqueued",
        file=str(file.path),
        flow=name,
        key=f"{key}.shared_volume",
        hint="write to object storage (s3://, az://, gs://) or a SQL table, or mount that "
        "path as one volume on every worker and set `shared_volume: true` on the store "
        "(or run it in one process with `hygge run`)",
    )


def check_schedule(source: Source, options: FlowOptions, flow_path: tuple[Any, ...]) -> None:
    """One schedule per flow, and none on a flow that depends on another: a scheduled flow
    is the start of its chain; the flows that depend on it run after it in the same run
    (docs/schedules.md)."""
    if options.schedule is None and options.every is None:
        return
    key = "schedule" if options.schedule is not None else "every"
    at = (*flow_path, "options", key) if source.located else ()
    if source.located and at not in source.located.lines:
        at = (*flow_path, key)
    if options.schedule is not None and options.every is not None:
        raise source.error(
            "a flow has either `schedule:` (cron) or `every:` (an interval), not both",
            at,
            key=f"options.{key}",
            hint='keep one, e.g. schedule: "0 * * * *" or every: 1h',
        )
    if options.depends_on:
        raise source.error(
            f"a flow that depends on another ({', '.join(options.depends_on)}) cannot have "
            "its own schedule: it runs when what it depends on succeeded",
            at,
            key=f"options.{key}",
            hint="put the schedule on the first flow of the chain; the flows that depend on "
            "it are sent with it, in the same run, and run after it",
        )
