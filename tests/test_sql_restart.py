"""A database that restarts mid-load (every connection drops, new ones refused for a while):
the flow's retry loads exactly once into a staging table of its own, and nothing is left.

The restart is a loopback proxy the test cuts (tests/tcpproxy.py): the shared servers keep
running for everyone else. While it is cut, the failed attempt's abort() cannot drop its
staging table (as during a real restart); the next attempt must neither trip over that table
nor leave it behind.
"""

from __future__ import annotations

import asyncio
import threading
from urllib.parse import urlsplit, urlunsplit

import duckdb
import polars as pl
import pytest

from hygge import Flow, Home, ParquetStore, SQLHome, SQLStore
from tests.distributed_support import wait_for
from tests.sqldb import database, unique
from tests.tcpproxy import TcpProxy

BATCHES, ROWS = 6, 5_000
# A connection cut mid-read must not leave PyMySQL a result to drain at garbage collection
# (its __del__ printed a traceback after the test run's "passed" line).
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")


class _CutMidLoad(Home):
    """Yields BATCHES batches; in the first attempt, once the store is loading its staging
    table, cuts the proxy (and restores it when the server would be back)."""

    type_name = "test_cut_mid_load"

    def __init__(self, name: str, proxy: TcpProxy, staging_exists, server_gone) -> None:
        super().__init__(name)
        self.proxy, self.attempts = proxy, 0
        self.staging_exists, self.server_gone = staging_exists, server_gone

    async def read_batches(self):
        self.attempts += 1
        for b in range(BATCHES):
            ids = range(b * ROWS, (b + 1) * ROWS)
            yield pl.DataFrame({"id": list(ids), "name": [f"n{i}" for i in ids]})
            if self.attempts == 1 and b == 2:
                for _ in range(600):  # the store writes in a thread: let the loop run
                    if self.staging_exists():
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError("the store never created its staging table")
                self.proxy.cut()
                threading.Thread(target=self._restart, daemon=True).start()

    def _restart(self) -> None:
        """Come back once the abort found the server down and its old sessions are gone."""
        wait_for(lambda: self.proxy.refused >= 1, 60, "abort() to try a fresh connection")
        wait_for(self.server_gone, 60, "the server to end the cut sessions")
        self.proxy.restore()


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) > 1 else host))


@pytest.mark.parametrize("service", ["postgres", "mysql"])
def test_a_restart_mid_load_is_retried_exactly_and_leaves_no_staging(request, service):
    url = request.getfixturevalue(f"{service}_url")
    parts = urlsplit(url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or {"postgres": 5432}.get(
        service, 3306))  # fmt: skip
    table = unique("restart")
    with database(url, table) as db:

        def server_gone() -> bool:
            ports = proxy.upstream_ports
            if db.dialect == "postgresql":
                rows = db.run("SELECT client_port FROM pg_stat_activity WHERE client_port > 0")
                return not {r[0] for r in rows} & ports
            rows = db.run("SELECT HOST FROM information_schema.PROCESSLIST")
            return not {int(h.rsplit(":", 1)[1]) for (h,) in rows if h and ":" in h} & ports

        def staging_exists() -> bool:
            return any(table in t for t in db.staging_tables())

        home = _CutMidLoad("src", proxy, staging_exists, server_gone)
        events = []
        try:
            result = Flow(
                home,
                SQLStore(table, connection=_through(url, proxy.port)),
                retries=5,
                retry_delay=0.5,
                on_progress=events.append,
            ).run()
        finally:
            proxy.close()
        assert home.attempts >= 2, "the cut did not fail the first attempt"
        assert any(e.state == "retrying" for e in events)
        total = BATCHES * ROWS
        assert result.rows == total
        count, ids, names = db.run(
            f"SELECT count(*), sum(id), count(DISTINCT name) FROM {db.q(table)}"
        )[0]
        assert (count, int(ids), names) == (total, total * (total - 1) // 2, total)
        left = [t for t in db.staging_tables() if table in t]
        assert not left, f"staging left behind: {left}"


@pytest.mark.parametrize("service", ["postgres", "mysql"])
def test_a_restart_mid_read_is_retried_and_reads_every_row_once(request, service, tmp_path):
    """The SQL home's side: the same classifier says the dropped read may heal."""
    url = request.getfixturevalue(f"{service}_url")
    parts = urlsplit(url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or {"postgres": 5432}.get(
        service, 3306))  # fmt: skip
    # enough rows that the server is still sending when the first batch arrives
    table, total = unique("reread"), 1_000_000 if service == "postgres" else 200_000
    with database(url, table) as db:
        db.run(f"CREATE TABLE {table} (id BIGINT, name VARCHAR(80))")
        db.run(
            f"INSERT INTO {table} SELECT g, concat('n', g, repeat('x', 60)) FROM "
            + (
                f"generate_series(0, {total - 1}) g"
                if db.dialect == "postgresql"
                else f"(SELECT seq AS g FROM seq_0_to_{total - 1}) s"
            )
        )
        cut = threading.Event()

        def server_gone() -> bool:
            rows = (
                db.run("SELECT client_port FROM pg_stat_activity WHERE client_port > 0")
                if db.dialect == "postgresql"
                else [
                    (int(h.rsplit(":", 1)[1]),)
                    for (h,) in db.run("SELECT HOST FROM information_schema.PROCESSLIST")
                    if h and ":" in h
                ]
            )
            return not {r[0] for r in rows} & proxy.upstream_ports

        def restart() -> None:
            wait_for(server_gone, 60, "the server to end the cut sessions")
            proxy.restore()

        def on_progress(event) -> None:
            if event.rows and not cut.is_set():  # mid-read, first attempt
                cut.set()
                proxy.cut()
                threading.Thread(target=restart, daemon=True).start()

        lake = tmp_path / "lake"
        try:
            result = Flow(
                SQLHome(table, connection=_through(url, proxy.port), batch_size=5_000),
                ParquetStore("out", path=str(lake)),
                retries=5,
                retry_delay=0.5,
                on_progress=on_progress,
            ).run()
        finally:
            proxy.close()
        assert cut.is_set() and result.attempt >= 2, "the cut did not fail the first attempt"
        files = f"read_parquet('{lake}/**/*.parquet')"
        count, ids, names = (
            duckdb.connect()
            .execute(f"SELECT count(*), sum(id), count(DISTINCT name) FROM {files}")
            .fetchone()
        )
        assert (count, int(ids), names) == (total, total * (total - 1) // 2, total)


@pytest.mark.parametrize("service", ["postgres", "mysql"])
def test_an_append_whose_commit_landed_unheard_is_retried_without_a_second_copy(request, service):
    """The COMMIT of the publish reaches the server and its answer is lost (the connection
    drops as it arrives): the append is in the table, but the store saw a dropped
    connection, so the flow retries. The retry finds the mark the publish wrote in the same
    transaction and appends nothing more: every row once, the run a success."""
    url = request.getfixturevalue(f"{service}_url")
    parts = urlsplit(url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 3306)
    table = unique("unheard")
    rows = pl.DataFrame({"id": list(range(ROWS)), "name": [f"n{i}" for i in range(ROWS)]})

    class _Rows(Home):
        type_name = "test_unheard_rows"

        async def read_batches(self):
            yield rows

    with database(url, table) as db:
        try:
            db.run(f"CREATE TABLE {table} (id bigint, name varchar(20))")
            dropped = proxy.drop_answer_to(b"COMMIT", after=f"INSERT INTO {db.q(table)}".encode())
            store = SQLStore(table, connection=_through(url, proxy.port), mode="append")
            report = Flow(_Rows("rows"), store, retries=2, retry_delay=0.1).run()
            assert dropped.is_set(), "the publish's COMMIT answer was never dropped"
            assert report.ok, report
            assert db.rows(table) == list(zip(rows["id"], rows["name"], strict=True))
            assert not [t for t in db.staging_tables() if table in t]
        finally:
            proxy.close()
            if db.exists("_hygge_state"):
                db.run(f"DELETE FROM _hygge_state WHERE flow LIKE '{table}/%'")


@pytest.mark.parametrize("service", ["postgres", "mysql"])
def test_a_partitioned_append_whose_commit_landed_unheard_succeeds_once(request, service, tmp_path):
    """The same for a partitioned flow's commit: its publish's COMMIT lands and the answer
    is lost; the commit is tried again, finds the run's mark and publishes nothing more. The
    run succeeds (a failure here would have the user run it again: a second copy)."""
    from hygge import Coordinator

    url = request.getfixturevalue(f"{service}_url")
    parts = urlsplit(url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 3306)
    source, table = unique("src"), unique("unheard")
    with database(url, source, table) as db:
        try:
            db.run(f"CREATE TABLE {source} (id bigint, name varchar(20))")
            values = ", ".join(f"({i}, 'n{i}')" for i in range(2_000))
            db.run(f"INSERT INTO {source} VALUES {values}")
            db.run(f"CREATE TABLE {table} (id bigint, name varchar(20))")
            flows = tmp_path / "flows.yml"
            flows.write_text(
                "flows:\n  big:\n"
                f"    home: {{type: sql, connection: '{url}', table: {source}, "
                "partition_on: id}\n"
                f"    store: {{type: sql, connection: '{_through(url, proxy.port)}', "
                f"table: {table}, mode: append}}\n"
                "    options: {partitions: 3, retries: 2, retry_delay: 0.1}\n"
            )
            insert = f"INSERT INTO {db.q(table)}".encode()
            dropped = proxy.drop_answer_to(b"COMMIT", after=insert)
            result = Coordinator(flows).run()
            assert dropped.is_set(), "the publish's COMMIT answer was never dropped"
            assert result.ok, result.failed
            assert db.rows(table) == db.rows(source)
            assert not [t for t in db.staging_tables() if table in t]
        finally:
            proxy.close()
            if db.exists("_hygge_state"):
                db.run(f"DELETE FROM _hygge_state WHERE flow LIKE '{table}/%'")
