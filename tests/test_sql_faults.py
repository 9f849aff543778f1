"""One classifier of SQL faults (hygge/sql/faults.py), used by the SQL home, store and
connect; and driver messages that never print a secret or a huge value back."""

from __future__ import annotations

import time

import pytest

from hygge.sql import faults
from hygge.sql.url import parse_url


@pytest.mark.parametrize(
    "text",
    [
        "could not connect to server: Connection refused",
        "server closed the connection unexpectedly",
        "canceling statement due to statement timeout",
        "connection timed out",
        "(2013, 'Lost connection to MySQL server during query')",
        "(2006, 'MySQL server has gone away')",
        "terminating connection due to administrator command",
        "FATAL: the database system is starting up",
        "deadlock detected",
        "(1205, 'Lock wait timeout exceeded; try restarting transaction')",
        "no connection to the server",
        "could not receive data from server: Connection reset by peer",
    ],
)
def test_faults_that_may_heal_are_transient(text):
    assert faults.is_transient(text)
    assert faults.is_transient(RuntimeError(text))


@pytest.mark.parametrize(
    "text",
    [
        'relation "nope" does not exist',
        'syntax error at or near "SELEC"',
        'password authentication failed for user "x" (connection refused earlier)',
        "(1045, \"Access denied for user 'root'@'localhost'\")",
        'database "nope" does not exist',
        "duplicate key value violates unique constraint",
    ],
)
def test_permanent_faults_are_not(text):
    assert not faults.is_transient(text)


def test_codes_decide_where_the_text_does_not():
    class DriverError(Exception):
        sqlstate = "57P01"

    assert faults.is_transient(DriverError("something the driver said"))
    assert faults.is_transient(Exception(2013, "?"))
    assert not faults.is_transient(Exception(1064, "You have an error in your SQL syntax"))
    assert faults.is_transient(ConnectionResetError("reset"))


def test_detail_masks_the_password_and_truncates_a_huge_value():
    url = parse_url("postgresql://u:hunter2@h/db", "t")
    huge = "x" * 10_000_000
    start = time.perf_counter()
    text = faults.detail(url, RuntimeError(f"bad value '{huge}' for hunter2\n  at line 1"))
    assert time.perf_counter() - start < 2
    assert "hunter2" not in text and "\n" not in text
    assert len(text) < 3000 and "(10,000,0" in text and "characters, truncated)" in text
