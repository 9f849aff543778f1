"""One answer, for every SQL path (home, store, sessions, connecting), to "may this database
fault heal if we try again?", and the driver's text as a message may show it.

Transient: the server is down, restarting, overloaded, or dropped the connection; a timeout;
a deadlock or lock wait (the other transaction finishes). Permanent: everything else, and a
refused login or a missing database even when the driver words it like a network fault.
"""

from __future__ import annotations

import re

from hygge.errors import HyggeError
from hygge.secrets import clip
from hygge.sql.url import SqlUrl

_TRANSIENT = re.compile(
    r"connection refused|could not connect|can't connect|timed? ?out|timeout|"
    r"server closed the connection|lost connection|connection reset|too many connections|"
    r"no connection to the server|could not (send|receive) data|connection to server .* lost|"
    r"terminating connection|connection (was )?killed|"
    r"the database system is (starting up|shutting down|in recovery mode)|"
    r"name or service not known|temporary failure in name resolution|no route to host|"
    r"network is unreachable|gone away|broken pipe|deadlock|lock wait",
    re.I,
)
_PERMANENT = re.compile(
    r"password|access denied|authentication|does not exist|unknown database", re.I
)
# SQLSTATE classes/codes that may heal: connection exceptions, serialization failures and
# deadlocks, operator intervention (shutdown, restart), too many connections.
_TRANSIENT_SQLSTATES = ("08", "40001", "40P01", "57P01", "57P02", "57P03", "53300")
# MySQL/MariaDB client and server codes of the same kinds.
_TRANSIENT_MYSQL_CODES = {1040, 1205, 1213, 1927, 2002, 2003, 2006, 2013, 2055}


def is_transient(exc: BaseException | str) -> bool:
    """True when the fault may heal by itself; `exc` is a driver exception or its text."""
    text = str(exc)
    if _PERMANENT.search(text):
        return False
    if isinstance(exc, BaseException):
        sqlstate = getattr(exc, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_TRANSIENT_SQLSTATES):
            return True
        code = exc.args[0] if exc.args else None
        if isinstance(code, int) and code in _TRANSIENT_MYSQL_CODES:
            return True
        if isinstance(exc, ConnectionError | TimeoutError):
            return True
    return bool(_TRANSIENT.search(text))


def detail(url: SqlUrl, exc: BaseException) -> str:
    """The driver's message for a user: no password, one line, at most a few KB (a query
    with a 10 MB literal is not printed back)."""
    text = url.scrub(str(exc).strip()) or type(exc).__name__
    return clip(re.sub(r"\s+", " ", text))


def connection_error(
    url: SqlUrl, exc: BaseException, error: type[HyggeError], what: str
) -> HyggeError:
    """A driver's connect failure as a hygge error: where it tried, why, what to do."""
    text = str(exc).strip()
    first = clip(url.scrub(text.splitlines()[0] if text else repr(exc)))
    hint = "check that the server runs and the host and port are right"
    if re.search(r"password|access denied|authentication", text, re.I):
        hint = "check the user and password in the connection URL"
    elif re.search(r"does not exist|unknown database", text, re.I):
        hint = "check the database name in the connection URL"
    return error(  # what failed (connect) first, then where, then for whom
        f"cannot connect to {url.dialect} at {url.where()} ({url.masked}) for {what}: {first}",
        hint=hint,
        transient=is_transient(exc),
    )
