"""What the run history keeps of a run and of each of its flows, and the settings that bound it.

One record for both runners: `hygge run` writes its runs to the local history (a SQLite
file, hygge.history.local), distributed runs are read from their records in Redis
(worker.history); `hygge runs` shows both the same way (hygge.history.view).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hygge.progress import TERMINAL_STATES, FlowState
from hygge.report import FlowReport

EMBEDDED, DISTRIBUTED = "embedded", "distributed"
RUNNING = "running"  # a run state (not a flow state): some flow has not ended yet
RUN_STATES = (RUNNING, FlowState.SUCCESS.value, FlowState.FAILED.value, FlowState.SKIPPED.value)


@dataclass(frozen=True)
class FlowRecord:
    """One flow of a past (or running) run."""

    flow: str
    state: str
    rows: int = 0
    seconds: float = 0.0
    retries: int = 0
    error: str = ""

    @classmethod
    def from_report(cls, report: FlowReport) -> FlowRecord:
        error = report.error or (report.message if not report.ok else "") or ""
        return cls(
            report.flow,
            str(report.state),
            report.rows,
            round(report.seconds, 3),
            max(0, report.attempt - 1),
            error,
        )


@dataclass(frozen=True)
class RunRecord:
    """One run: when, how long, which runner, and its flows."""

    run_id: str
    runner: str  # EMBEDDED or DISTRIBUTED
    started: float  # epoch seconds
    seconds: float
    flows: tuple[FlowRecord, ...] = ()
    file: str = ""
    trigger: str = "manual"  # or "schedule"

    @property
    def state(self) -> str:
        """running while a flow has not ended; failed if one failed; skipped if every flow was
        skipped (e.g. a scheduled run whose previous run was still going); else success."""
        states = [f.state for f in self.flows]
        if any(s not in TERMINAL_STATES for s in states):
            return RUNNING
        if FlowState.FAILED in states:
            return FlowState.FAILED.value
        if states and all(s == FlowState.SKIPPED for s in states):
            return FlowState.SKIPPED.value
        return FlowState.SUCCESS.value

    def count(self, state: str) -> int:
        return sum(1 for f in self.flows if f.state == state)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.flows)

    def as_json(self, with_flows: bool = True) -> dict[str, Any]:
        out = {
            "run_id": self.run_id,
            "runner": self.runner,
            "trigger": self.trigger,
            "file": self.file,
            "started": self.started,
            "seconds": round(self.seconds, 3),
            "state": self.state,
            "ok": self.count(FlowState.SUCCESS),
            "failed": self.count(FlowState.FAILED),
            "skipped": self.count(FlowState.SKIPPED),
            "rows": self.rows,
        }
        if with_flows:
            out["flows"] = [asdict(f) for f in self.flows]
        return out


def from_run(
    run_id: str,
    reports: Iterable[FlowReport],
    seconds: float,
    file: str = "",
    runner: str = EMBEDDED,
    ended: float | None = None,
) -> RunRecord:
    """The record of a run that just ended in this process (`hygge run`)."""
    ended = time.time() if ended is None else ended
    flows = tuple(FlowRecord.from_report(r) for r in reports)
    return RunRecord(run_id, runner, ended - seconds, seconds, flows, file)


def matches(run: RunRecord, flows: list[str] | None, state: str | None) -> bool:
    """The filters of `hygge runs`: runs holding one of `flows` (a name, or a definition's
    prefix `crm` for its entities `crm.*`), and in `state`."""
    if state and run.state != state:
        return False
    if flows:
        names = [f.flow for f in run.flows]
        return any(
            n == w or n.startswith(f"{w}.") or n.startswith(f"{w}#") for w in flows for n in names
        )
    return True


@dataclass(frozen=True)
class HistorySettings:
    """Where the local history is and how much any history keeps (environment):
    HYGGE_HISTORY (a file path, or `off`; default ~/.local/state/hygge/history.sqlite, under
    $XDG_STATE_HOME when set), HYGGE_HISTORY_KEEP_RUNS (default 1000 runs) and
    HYGGE_HISTORY_KEEP_DAYS (default 30 days): the older of the two bounds wins, in the local
    file and in Redis alike."""

    path: Path | None
    keep_runs: int = 1000
    keep_days: float = 30.0
    problems: list[str] = field(default_factory=list)

    @property
    def keep_seconds(self) -> int:
        return max(60, int(self.keep_days * 86400))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HistorySettings:
        env = os.environ if env is None else env
        raw = (env.get("HYGGE_HISTORY") or "").strip()
        if raw.lower() in ("off", "none", "0", "false", "no"):
            path: Path | None = None
        elif raw:
            path = Path(raw).expanduser()
        else:
            state_home = env.get("XDG_STATE_HOME") or str(Path("~/.local/state").expanduser())
            path = Path(state_home) / "hygge" / "history.sqlite"
        problems: list[str] = []
        keep_runs = _number(env, "HYGGE_HISTORY_KEEP_RUNS", 1000, problems)
        keep_days = _number(env, "HYGGE_HISTORY_KEEP_DAYS", 30, problems)
        return cls(path, max(1, int(keep_runs)), max(0.001, keep_days), problems)


def _number(env: Mapping[str, str], name: str, default: float, problems: list[str]) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
        if value <= 0:
            raise ValueError
        return value
    except ValueError:
        problems.append(f"{name}={raw!r} is not a positive number; using {default:g}")
        return default
