"""The load plan: how a run's data lands in a SQL table, decided without a connection.

Given the target's current columns (None when it does not exist), the incoming Arrow schema,
the mode, the schema policy and the merge key, `plan_load` says which types the batches are
cast to, how the staging table is created, which columns the target gains or changes, and
what is refused. It only reads its arguments, so every rule has a fast unit test
(tests/test_sql_load_plan.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from hygge.errors import StoreError
from hygge.sql.types import Column, canonical, ddl, family, fits, tag


@dataclass(frozen=True)
class LoadRules:
    """What a plan needs to know about a database; each Session class carries its own."""

    dialect: str  # the key of the type tables in hygge/sql/types.py
    key_text_length: int | None = None  # MySQL indexes no unbounded TEXT/BLOB key column
    type_comments: bool = False  # MySQL: hygge tags some types in the column's comment
    alters_types: bool = True  # SQLite cannot change a column's type
    label: str = ""  # the database's name in messages (default: `dialect`)
    numeric_staged_as_text: bool = False  # PostgreSQL binary COPY cannot send numeric text


class PlanRefused(StoreError):
    """The data cannot land as configured; the store names itself in front of the message."""


@dataclass
class LoadPlan:
    """How this run's data lands: staging columns, and what the target needs changed."""

    names: list[str]
    columns: list[Column] = field(default_factory=list)  # what batches are cast to
    ddl: list[str] = field(default_factory=list)  # the column types the target ends up with
    staging_ddl: list[str] = field(default_factory=list)  # the staging table's column types
    add: list[tuple[str, str]] = field(default_factory=list)  # new target columns (name, ddl)
    alter: list[tuple[str, str]] = field(default_factory=list)  # type changes (name, ddl)
    # staged as TEXT (see LoadRules.numeric_staged_as_text), cast when publishing (name, ddl)
    staged_as_text: list[tuple[str, str]] = field(default_factory=list)

    def matches(self, target: list[Column] | None) -> bool:
        """The target has the staged columns, in order, with the types they were staged as."""
        return (
            target is not None
            and [c.name for c in target] == self.names
            and all(a is b for a, b in zip(self.columns, target, strict=True))
        )


def plan_load(
    target: list[Column] | None,
    schema: pa.Schema,
    rules: LoadRules,
    *,
    mode: str,
    schema_policy: str,
    key: list[str] | None = None,
) -> LoadPlan:
    """The plan for loading data of `schema` into `target`; raises PlanRefused."""
    key = key or []
    if mode == "merge":
        missing = [k for k in key if k not in schema.names]
        if missing:
            raise PlanRefused(
                f"key column(s) {', '.join(missing)} not in the data",
                hint=f"the data has: {', '.join(schema.names)}",
            )
    existing = {c.name: c for c in target or []}
    plan = LoadPlan(list(schema.names))
    for f in schema:
        wanted = ddl(f.type, rules.dialect, f.name)
        limit = None
        if rules.key_text_length and f.name in key and family(f.type) in ("text", "binary"):
            limit = rules.key_text_length
            wanted = f"{'VARCHAR' if family(f.type) == 'text' else 'VARBINARY'}({limit})"
        col = existing.get(f.name)
        if col is not None and fits(f.type, col.type):
            plan.columns.append(col)
            keep = col.sql_type
            if rules.type_comments and (tag(col.type) or family(col.type) == "timestamptz"):
                keep = ddl(col.type, rules.dialect, f.name)  # keep hygge's type comment
            plan.ddl.append(keep)
            continue
        if col is not None:
            if schema_policy == "freeze":
                raise PlanRefused(
                    f"column '{f.name}' is {col.sql_type} in the target but the data has "
                    f"{f.type}; schema_policy: freeze refuses type changes",
                    hint="cast the column in the source, or set schema_policy: evolve",
                )
            if mode != "replace":
                plan.alter.append((f.name, wanted))
        elif target is not None and mode != "replace":
            plan.add.append((f.name, wanted))
        plan.columns.append(Column(f.name, canonical(f.type, rules.dialect), wanted, limit))
        plan.ddl.append(wanted)
    if plan.alter and not rules.alters_types:
        raise PlanRefused(
            f"{rules.label or rules.dialect} cannot change a column's type ({plan.alter[0][0]})",
            hint="cast the column in the source, or use mode: replace",
        )
    for col, type_ddl in zip(plan.columns, plan.ddl, strict=True):
        if rules.numeric_staged_as_text and tag(col.type) == "numeric":
            plan.staged_as_text.append((col.name, type_ddl))
            plan.staging_ddl.append("TEXT")
        else:
            plan.staging_ddl.append(type_ddl)
    return plan


def check_merge_target(target: list[Column], key: list[str]) -> None:
    """An existing target of a merge has every key column."""
    names = [c.name for c in target]
    missing = [k for k in key if k not in names]
    if missing:
        raise PlanRefused(
            f"key column(s) {', '.join(missing)} not in the target table",
            hint=f"the table has: {', '.join(names)}",
        )
