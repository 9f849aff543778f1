"""Child process of bench_commit: run one flows.yml in-process (what `hygge run` does) and
time the commit step of its partitioned flow.

    python -m benchmarks.commit_share FLOWS [--gather]

Prints one JSON line: {"wall": s, "commit": s, "cpu": s}. `--gather` runs a partitioned
SQL flow the way hygge did before parts shared one table and appends read the parts
directly (a table per part, every part copied into one staging table at the commit, then
published from there), so before and after are measured in one benchmark run.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any


def main() -> None:
    flows = Path(sys.argv[1])
    from hygge.coordinator import Coordinator
    from hygge.run.parts import PartitionedFlow

    if "--gather" in sys.argv:  # a table per part, copied into one staging table
        from hygge.sql.postgres import PostgresSql
        from hygge.stores.sql import SQLStore

        PostgresSql.transactional_ddl = False
        SQLStore._append_directly = lambda self, run: False  # type: ignore[method-assign]

    spent: list[float] = []
    commit = PartitionedFlow.commit

    async def timed(self: PartitionedFlow, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await commit(self, *args, **kwargs)
        finally:
            spent.append(time.perf_counter() - started)

    PartitionedFlow.commit = timed  # type: ignore[method-assign]
    started = time.perf_counter()
    result = Coordinator(flows).run()
    wall = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"failed: {[r.error for r in result.failed]}")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    print(json.dumps({"wall": wall, "commit": sum(spent), "cpu": cpu}))


if __name__ == "__main__":
    main()
