"""What `hygge runs` reads: the local history and, when Redis answers, the distributed runs,
merged newest first (a run found in both, e.g. one followed with `enqueue --wait`, once)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hygge.errors import HyggeError
from hygge.history.local import LocalHistory
from hygge.history.records import HistorySettings, RunRecord

if TYPE_CHECKING:
    from worker.runs import Runs


@dataclass
class Found:
    runs: list[RunRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # a source that could not be read, and why


def find_runs(
    flows: list[str] | None = None,
    state: str | None = None,
    limit: int = 20,
    local_only: bool = False,
    env: Mapping[str, str] | None = None,
) -> Found:
    env = os.environ if env is None else env
    settings = HistorySettings.from_env(env)
    found = Found(notes=list(settings.problems))
    merged: dict[str, RunRecord] = {}
    local = LocalHistory.from_settings(settings)
    if local is not None:
        try:
            merged |= {r.run_id: r for r in local.runs(flows, state, limit)}
        except Exception as exc:
            found.notes.append(f"could not read the local history at {local.path}: {exc}")
    if not local_only:
        try:
            merged |= {r.run_id: r for r in _distributed(env, flows, state, limit)}
        except _Unreachable as exc:
            if exc.configured:
                found.notes.append(str(exc))
    found.runs = sorted(merged.values(), key=lambda r: r.started, reverse=True)[:limit]
    return found


def find_run(run_id: str, local_only: bool = False, env: Mapping[str, str] | None = None) -> Found:
    env = os.environ if env is None else env
    settings = HistorySettings.from_env(env)
    found = Found(notes=list(settings.problems))
    if not local_only:
        try:
            run = _distributed_one(env, run_id)
            if run is not None:
                found.runs = [run]
                return found
        except _Unreachable as exc:
            if exc.configured:
                found.notes.append(str(exc))
    local = LocalHistory.from_settings(settings)
    run = local.run(run_id) if local is not None else None
    found.runs = [run] if run is not None else []
    return found


class _Unreachable(Exception):
    def __init__(self, message: str, configured: bool) -> None:
        super().__init__(message)
        self.configured = configured


def _records(env: Mapping[str, str]) -> Runs:
    """The distributed run records (Redis), imported only now: `hygge runs` talks to Redis."""
    from worker.contract import Settings
    from worker.runs import Runs, connect

    settings = Settings.from_env(env)
    configured = bool(env.get("HYGGE_RESULT_BACKEND") or env.get("HYGGE_BROKER_URL"))
    try:
        return Runs(connect(settings.result_backend, "result backend"))
    except HyggeError as exc:
        raise _Unreachable(f"distributed runs not shown: {exc.message}", configured) from None


def _distributed(
    env: Mapping[str, str], flows: list[str] | None, state: str | None, limit: int
) -> list[RunRecord]:
    from worker import history

    return history.runs(_records(env), flows, state, limit)


def _distributed_one(env: Mapping[str, str], run_id: str) -> RunRecord | None:
    from worker import history

    return history.read(_records(env), run_id)
