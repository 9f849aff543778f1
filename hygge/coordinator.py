"""Runs the flows of a flows.yml in-process: concurrently, in `depends_on` order.

A failed flow does not stop the others; the flows that depend on it are skipped and say why
(the executor is hygge.run.local; each flow runs as a step of hygge.run.steps, the code the
workers run too).
`python -m hygge.coordinator flows.yml` is the same as `hygge run flows.yml`.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from hygge import config as config_module
from hygge import config_quality
from hygge.config import FlowsFile
from hygge.entities import EntitySet, manifest
from hygge.errors import HomeError
from hygge.progress import FlowState
from hygge.report import FlowReport, ProgressCallback
from hygge.run.context import RunContext
from hygge.run.local import run_graph
from hygge.run.steps import Step, StepKind, execute


@dataclass
class RunResult:
    """The outcome of every selected flow of one run."""

    run_id: str
    results: dict[str, FlowReport] = field(default_factory=dict)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)  # e.g. an entity gone since last run

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results.values())

    @property
    def failed(self) -> list[FlowReport]:
        return [r for r in self.results.values() if not r.ok]


class Coordinator:
    """Plans and runs flows. `config` is a path to flows.yml or an already loaded FlowsFile."""

    def __init__(
        self,
        config: str | os.PathLike[str] | FlowsFile,
        *,
        flows: list[str] | None = None,
        concurrency: int = 4,
        on_progress: ProgressCallback | None = None,
        env: Mapping[str, str] | None = None,
        full_refresh: bool = False,
        wait_for_lock: bool = False,
    ) -> None:
        self.config = config if isinstance(config, FlowsFile) else config_module.load(config, env)
        self.selected = self.config.select(flows)
        self.concurrency = max(1, concurrency)
        self.on_progress = on_progress
        self.full_refresh = full_refresh
        self.wait_for_lock = wait_for_lock  # a flow already running elsewhere: wait, or refuse
        self.run_id = uuid.uuid4().hex[:12]

    def plan(self) -> list[list[str]]:
        """The selected flows in waves: each wave depends only on earlier ones."""
        return self.config.waves(self.selected)

    def entity_sets(self) -> list[EntitySet]:
        """The definitions with entities that this run selects at least one entity of."""
        chosen = set(self.selected)
        return [s for s in self.config.entity_sets.values() if chosen & set(s.flows)]

    def entity_notes(self) -> list[str]:
        """What discovery skipped, and entities the last run had that are gone now (read
        from each store's list of entities; see hygge/entities/manifest.py)."""
        return [note for s in self.entity_sets() for note in (*s.notes, *manifest.gone(s))]

    async def check(self) -> dict[str, Exception]:
        """Check every selected home and store without moving data; errors by flow."""
        problems: dict[str, Exception] = {}
        for name in self.selected:
            spec = self.config.flows[name]
            try:
                upstream = self._upstream(name)
                home = None
                if upstream is None:
                    home = spec.home.build()
                    await home.check()
                    if spec.quality is not None:
                        # shape and checks against the columns the home reads, where known
                        names = await asyncio.to_thread(_columns_of, home)
                        if names is not None:
                            config_quality.check_against(name, spec.quality, names)
                else:
                    self._check_columns_upstream(name, upstream)
                store = spec.store.build()
                await store.check()
                # A store that needs columns of what it receives (keys) checks them here.
                check_home = getattr(store, "check_home", None)
                if home is not None and check_home is not None:
                    await check_home(home)
            except Exception as exc:
                problems[name] = exc
        return problems

    def _check_columns_upstream(self, name: str, upstream: str) -> None:
        """A home reading what `upstream` writes cannot be checked on disk yet; its `columns`
        are checked against the schema `upstream` reads, where that is known already."""
        home = self.config.flows[name].home
        wanted = home.cls.columns_of(home.settings)
        source = self.config.flows[upstream].home.build()
        if not wanted or not hasattr(source, "schema"):
            return
        try:
            names = source.schema().names
        except Exception:  # not readable before its own upstream runs: nothing to check
            return
        missing = [c for c in wanted if c not in names]
        if missing:
            raise HomeError(
                f"home '{name}' reads column(s) {', '.join(missing)} from what flow "
                f"'{upstream}' writes, which has none such",
                hint=f"columns flow '{upstream}' writes: {', '.join(names)}",
            )

    def _upstream(self, name: str) -> str | None:
        """The flow this one depends on whose store writes what it reads (absent until then)."""
        source = self.config.flows[name].home.path
        if not source:
            return None
        pending, seen = list(self.config.flows[name].options.depends_on), set()
        while pending:
            dep = pending.pop()
            if dep in seen or dep not in self.config.flows:
                continue
            seen.add(dep)
            target = self.config.flows[dep].store.path
            if target and (source == target or source.startswith(target.rstrip("/") + "/")):
                return dep
            pending.extend(self.config.flows[dep].options.depends_on)
        return None

    def run(self) -> RunResult:
        return asyncio.run(self.start())

    async def start(self) -> RunResult:
        """Run every selected flow; returns when all have ended (succeeded, failed, skipped)."""
        started = time.perf_counter()
        result = RunResult(self.run_id)
        result.warnings = await asyncio.to_thread(self.entity_notes)
        for name in self.selected:
            self._emit(FlowReport(name, FlowState.PENDING))
        result.results = await run_graph(
            self.selected,
            {n: self.config.flows[n].options.depends_on for n in self.selected},
            self._run_flow,
            concurrency=self.concurrency,
            on_progress=self.on_progress,
        )
        for entity_set in self.entity_sets():  # the next run compares with these
            note = await asyncio.to_thread(manifest.record, entity_set)
            if note:
                result.warnings.append(note)
        result.seconds = time.perf_counter() - started
        return result

    def context(self) -> RunContext:
        """How this runner runs a flow: progress to the caller, the lock waited for or
        refused, a partitioned flow's parts sharing --concurrency, retries done here."""
        return RunContext(
            on_progress=self.on_progress,
            wait_for_lock=self.wait_for_lock,
            max_parallel=self.concurrency,
            run_id=self.run_id,
        )

    async def _run_flow(self, name: str) -> FlowReport:
        spec = self.config.flows[name]
        step = Step(name, name, StepKind.MOVE)
        started = time.perf_counter()
        try:
            return await execute(step, spec, self.context(), full_refresh=self.full_refresh)
        except Exception as exc:
            return FlowReport(
                name,
                FlowState.FAILED,
                seconds=time.perf_counter() - started,
                message=str(exc),
                error=str(exc),
                exception=exc,
            )

    def _emit(self, progress: FlowReport) -> None:
        if self.on_progress is not None:
            self.on_progress(progress)


if __name__ == "__main__":  # `python -m hygge.coordinator flows.yml`: the CLI depends on this
    from hygge.cli import app  # module, never the other way round

    app(args=["run", *sys.argv[1:]], prog_name="python -m hygge.coordinator")


def _columns_of(home: object) -> list[str] | None:
    """The columns a home yields, where it can tell without reading: a file home's schema, a
    SQL table's columns."""
    if hasattr(home, "schema"):
        return list(home.schema().names)
    if hasattr(home, "column_names"):
        names = home.column_names()
        return list(names) if names is not None else None
    return None
