"""A flow compiles into steps; both runners execute the same steps with the same rules.

- a plain flow is one step, `move`;
- on workers, a flows.yml with entity definitions starts as one `discover` step
  (`DISCOVER_STEP`): a worker discovers the entities with its own environment and adds every
  flow to the run, so the machine that enqueues needs only Redis (worker.tasks);
- a partitioned flow is `stage` steps, one per partition (`lineitem#3/8`), each depending on
  what the flow depends on, and one `commit` step that keeps the flow's name (flows depending
  on it wait for the commit) and depends on every partition. The commit step *collects*: it
  runs once all its partitions ended, however they ended (after a failure it discards every
  partition's staging and says which failed).

`decide` is the one skip rule (a step behind a failed or skipped dependency is skipped, and
says so with `skip_message`), used by the in-process executor (hygge.run.local) and by the
run records in Redis (worker.runs). `execute` runs one step with a runner's context.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from hygge.partitions import partition_count
from hygge.progress import TERMINAL_STATES, FlowState
from hygge.report import FlowReport
from hygge.run.context import RunContext

if TYPE_CHECKING:
    from hygge.config import FlowSpec


class StepKind(StrEnum):
    MOVE = "move"  # a whole flow: home -> store, one commit
    STAGE = "stage"  # one partition of a partitioned flow, staged and sealed
    COMMIT = "commit"  # publish every staged partition of a flow at once
    DISCOVER = "discover"  # workers: find a definition's entities, add their flows to the run


@dataclass(frozen=True)
class Step:
    """One unit a runner executes: `name` in reports and run records, `flow` in flows.yml."""

    name: str
    flow: str
    kind: StepKind
    depends_on: tuple[str, ...] = ()
    part: int | None = None  # STAGE: 0-based index of `parts`
    parts: int = 0  # STAGE and COMMIT: partitions of the flow

    @property
    def collects(self) -> bool:
        """Runs once its dependencies ended, whether or not they succeeded."""
        return self.kind == StepKind.COMMIT


DISCOVER_STEP = "discover:entities"  # never a flow's name (flow names have no `:`)


def partition_name(flow: str, index: int, count: int) -> str:
    """A partition's step name, in reports, run records and Flower: `lineitem#3/8`."""
    return f"{flow}#{index + 1}/{count}"


def compile_flow(spec: FlowSpec, depends_on: Sequence[str] = ()) -> list[Step]:
    """The steps of one flow. `partitions: auto` is the cores of the machine compiling it."""
    deps = tuple(depends_on)
    options = spec.options
    if not options.partitioned:
        return [Step(spec.name, spec.name, StepKind.MOVE, deps)]
    count = len(options.ranges) if options.ranges else partition_count(options.partitions)
    stages = [
        Step(partition_name(spec.name, i, count), spec.name, StepKind.STAGE, deps, i, count)
        for i in range(count)
    ]
    commit = Step(spec.name, spec.name, StepKind.COMMIT, tuple(s.name for s in stages), None, count)
    return [*stages, commit]


_BLOCKING = (FlowState.FAILED, FlowState.SKIPPED)  # a dependency that ended so skips a step


class Decision(StrEnum):
    RUN = "run"
    SKIP = "skip"
    WAIT = "wait"


def decide(states: Sequence[str], collects: bool = False) -> Decision:
    """A pending step, from its dependencies' states: run it, skip it, or wait."""
    if collects:
        return Decision.RUN if all(s in TERMINAL_STATES for s in states) else Decision.WAIT
    if any(s in _BLOCKING for s in states):
        return Decision.SKIP
    return Decision.RUN if all(s == FlowState.SUCCESS for s in states) else Decision.WAIT


def blocked_by(deps: Sequence[str], states: Sequence[str]) -> list[str]:
    return [
        d for d, s in zip(deps, states, strict=True) if s in (FlowState.FAILED, FlowState.SKIPPED)
    ]


def skip_message(blocked: Sequence[str]) -> str:
    return f"skipped: depends on {', '.join(blocked)}, which did not succeed"


def skipped(name: str, blocked: Sequence[str]) -> FlowReport:
    why = skip_message(blocked)
    return FlowReport(name, FlowState.SKIPPED, message=why, error=why)


async def execute(
    step: Step,
    spec: FlowSpec,
    context: RunContext,
    *,
    key: str = "",
    full_refresh: bool = False,
    failed: Sequence[tuple[str, str]] = (),
) -> FlowReport:
    """Run one step of `spec` with a runner's context. `key` names the partitioned run the
    stage and commit steps belong to (their parts and their board entries); `failed` are the
    partitions that failed, for a commit step."""
    from hygge.run.parts import PartitionedFlow

    runnable = spec.build(full_refresh=full_refresh, context=context)
    if step.kind == StepKind.MOVE:
        if key:  # this run of the flow, in every delivery: its commit lands once (a retry
            # after an interrupted publish adds nothing), and it takes over its own run lock
            # a dead delivery left (hygge.stores.files, hygge.storage.lock)
            setattr(runnable.store, "commit_key", f"{key}.{spec.name}")  # noqa: B010
            gate = getattr(runnable, "gate", None)  # and its quarantine store's, likewise
            if gate is not None and gate.new_quarantine is not None:
                gate.new_quarantine = _keyed(gate.new_quarantine, f"{key}.{spec.name}.aside")
        return await runnable.start()
    assert isinstance(runnable, PartitionedFlow)
    if step.kind == StepKind.STAGE:
        assert step.part is not None
        return await runnable.stage(step.part, step.parts, key)
    return await runnable.commit(key, step.parts, failed=failed)


def _keyed(new_store: Callable[[], Any], commit_key: str) -> Callable[[], Any]:
    """A store factory whose stores commit under `commit_key` (see `execute`)."""

    def make() -> Any:
        store = new_store()
        setattr(store, "commit_key", commit_key)  # noqa: B010
        return store

    return make
