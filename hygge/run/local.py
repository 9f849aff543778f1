"""The in-process executor: what `hygge run` and the Coordinator use to run flows.

Every flow starts as soon as the flows it depends on ended (at most `concurrency` at once);
one behind a failure is skipped by the same rule the workers' run records apply
(hygge.run.steps.decide). A failed flow does not stop the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence

from hygge.report import FlowReport, ProgressCallback
from hygge.run.steps import Decision, blocked_by, decide, skipped


async def run_graph(
    names: Sequence[str],
    depends_on: Mapping[str, Sequence[str]],
    run_one: Callable[[str], Awaitable[FlowReport]],
    *,
    concurrency: int = 4,
    on_progress: ProgressCallback | None = None,
) -> dict[str, FlowReport]:
    """Run `names` in dependency order; returns each one's report, in `names` order.
    Dependencies outside `names` count as satisfied."""
    results: dict[str, FlowReport] = {}
    done = {name: asyncio.Event() for name in names}
    slots = asyncio.Semaphore(max(1, concurrency))

    async def one(name: str) -> None:
        deps = [d for d in depends_on.get(name, ()) if d in done]
        try:
            for dep in deps:
                await done[dep].wait()
            states = [results[d].state for d in deps]
            if decide(states) == Decision.SKIP:
                results[name] = skipped(name, blocked_by(deps, states))
                if on_progress is not None:
                    on_progress(results[name])
                return
            async with slots:
                results[name] = await run_one(name)
        finally:
            done[name].set()

    async with asyncio.TaskGroup() as group:
        for name in names:
            group.create_task(one(name))
    return {n: results[n] for n in names}
