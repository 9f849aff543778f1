"""How a run's outcome is told beyond the tables: where each flow is defined (flows.yml:LINE,
for errors found at run time) and the JSON object that ends a `--log-format json` run."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hygge import exit_codes, logs
from hygge.report import FlowReport


def flow_places(flows_file: Path) -> Places:
    """`flows.yml:LINE` of each flow's definition (an entity flow `def.entity`: its
    definition's), for messages about errors found at run time. Empty if unreadable."""
    from hygge import yamlpos

    try:
        located = yamlpos.load(flows_file.read_text(encoding="utf-8"))
    except Exception:  # the run already read it; a message is no place to fail
        return Places()
    names = located.data.get("flows") if isinstance(located.data, dict) else None
    if not isinstance(names, dict):
        return Places()
    places = {}
    for name in names:
        line = located.line(("flows", name))
        if line:
            places[str(name)] = f"{flows_file}:{line}"
    return Places(places)


class Places(dict[str, str]):
    """Flow -> place; an entity flow (`definition.entity`) or partition (`flow#i/n`) falls
    back to its definition's place."""

    def get(self, key: str, default: Any = None) -> Any:
        for candidate in (key, key.split("#", 1)[0], key.split(".", 1)[0]):
            if candidate in self:
                return self[candidate]
        return default


def json_summary(
    progress: logs.JsonProgress,
    reports: Iterable[FlowReport],
    seconds: float,
    code: int,
    where: dict[str, str],
    interrupted: bool = False,
) -> None:
    """--log-format json: the run's end as one object, with each flow's outcome."""
    flows = []
    for r in reports:
        entry = logs.report_fields(r)
        if not r.ok and where.get(r.flow):
            entry["defined_at"] = where.get(r.flow)
        flows.append(entry)
    progress.write(
        {
            "event": "run_interrupted" if interrupted else "run_finished",
            "ok": code == exit_codes.OK,
            "exit_code": code,
            "seconds": round(seconds, 3),
            "rows": sum(f["rows"] for f in flows),
            "flows": flows,
        }
    )
