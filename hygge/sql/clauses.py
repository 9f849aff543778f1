"""A SQL statement's own clauses, told apart from what is nested in it, without a parser:
enough to ask whether a query orders its own rows (an ORDER BY in a window or a subquery
does not order the result)."""

from __future__ import annotations

import re

_ORDER_BY = re.compile(r"\bORDER\s+BY\b", re.IGNORECASE)


def has_order_by(clauses: str) -> bool:
    """Whether a statement's own clauses (`outside_parentheses(sql)`) order its rows."""
    return bool(_ORDER_BY.search(clauses))


def outside_parentheses(sql: str) -> str:
    """`sql` with quoted text, comments and whatever is inside parentheses blanked out: the
    clauses of the statement itself (an ORDER BY in a window or a subquery is not the
    result's order)."""
    out, depth, i = [], 0, 0
    while i < len(sql):
        ch, end = sql[i], i + 1
        if ch in "'\"`":  # to the closing quote ('' and \' stay inside)
            while end < len(sql) and sql[end] != ch:
                end += 2 if sql[end] == "\\" and ch != "`" else 1
            end += 1
        elif sql.startswith(("-- ", "#"), i) or sql.startswith("--\n", i):
            end = _until(sql, "\n", i)  # the newline itself stays
        elif sql.startswith("/*", i):
            end = _until(sql, "*/", i + 2) + 2
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(ch)
            i = end
            continue
        out.append(" " * (min(end, len(sql)) - i))
        i = end
    return "".join(out)


def _until(sql: str, mark: str, start: int) -> int:
    """Where `mark` is next in `sql` from `start`, or its end."""
    at = sql.find(mark, start)
    return len(sql) if at < 0 else at
