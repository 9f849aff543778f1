"""A flow's `shape:`, `checks:`, `on_check_failure:`, `quarantine:` and `secret_columns:` ->
a `Quality` (hygge/gate.py), every problem a ConfigError at its line in flows.yml.

What can be known without the data is checked here (types, check syntax, a quarantine store
for `quarantine`, columns the checks name against `shape.select`); what needs the home's
schema is checked by `hygge validate` (`check_against`) and, at the latest, on the first batch.
"""

from __future__ import annotations

from typing import Any

from hygge.config_source import Source, validate
from hygge.errors import ConfigError

ON_FAILURE = ("fail", "warn", "quarantine")


def parse(
    source: Source,
    flow: str,
    raw: dict[str, Any],
    at: tuple[Any, ...],
    options: Any,
    home: Any,
) -> Any:
    """The flow's Quality (its `quarantine` store is filled in by the caller)."""
    from hygge.check_spec import CheckSpecError, parse_checks
    from hygge.gate import Quality
    from hygge.shape import ShapeSpec

    shape = None
    if raw.get("shape") is not None:
        if not isinstance(raw["shape"], dict):
            raise source.error("`shape` must be a mapping", (*at, "shape"), key="shape")
        shape = validate(source, ShapeSpec, raw["shape"], (*at, "shape"), "shape")
    try:
        checks = parse_checks(raw.get("checks") or [])
    except CheckSpecError as exc:
        raise source.error(
            str(exc), (*at, "checks", exc.index), key=f"checks[{exc.index}]", hint=_CHECKS_HINT
        ) from None
    except ValueError as exc:
        raise source.error(str(exc), (*at, "checks"), key="checks", hint=_CHECKS_HINT) from None
    on_failure = raw.get("on_check_failure", "fail")
    if on_failure not in ON_FAILURE:
        raise source.error(
            f"on_check_failure must be one of {', '.join(ON_FAILURE)} (not {on_failure!r})",
            (*at, "on_check_failure"),
            key="on_check_failure",
        )
    if on_failure == "quarantine" and raw.get("quarantine") is None:
        raise source.error(
            "on_check_failure: quarantine needs a store for the failing rows",
            (*at, "on_check_failure"),
            key="quarantine",
            hint="add `quarantine: <a path, URL or store>` to the flow",
        )
    if on_failure != "quarantine" and raw.get("quarantine") is not None:
        raise source.error(
            "`quarantine` is used only with `on_check_failure: quarantine`",
            (*at, "quarantine"),
            key="quarantine",
            hint="remove it, or set on_check_failure: quarantine",
        )
    secret = raw.get("secret_columns") or []
    if not isinstance(secret, list) or not all(isinstance(c, str) for c in secret):
        raise source.error(
            "secret_columns must be a list of column names",
            (*at, "secret_columns"),
            key="secret_columns",
        )
    if shape is not None and shape.select is not None:
        known = [*shape.select, *shape.produced()]
        for i, check in enumerate(checks):
            for column in check.columns:
                if column not in known:
                    raise source.error(
                        f"check {check.label} names column '{column}', which `shape.select` "
                        f"leaves out; available: {', '.join(known)}",
                        (*at, "checks", _entry(raw, i)),
                        key="checks",
                    )
    if shape is not None and any(v == "file" for v in shape.add.values()):
        from hygge import registry

        if not hasattr(registry.lookup("home", home.type_name), "source_column"):
            raise source.error(
                "shape.add '... : file' needs a file home (parquet, csv, ndjson)",
                (*at, "shape", "add"),
                key="shape.add",
                hint="remove the `file` audit column, or read from files",
            )
    return Quality(flow, shape, tuple(checks), on_failure, None, tuple(secret))


def _entry(raw: dict[str, Any], index: int) -> int:
    """The `checks:` entry of the index-th check (one entry may hold several columns)."""
    from hygge.check_spec import parse_checks

    count = 0
    for i, entry in enumerate(raw.get("checks") or []):
        count += len(parse_checks([entry]))
        if count > index:
            return i
    return 0


_CHECKS_HINT = (
    "checks: not_null: [cols], unique: [cols], accepted_values: {col: [values]}, "
    "range: {col: [low, high]}, row_count: {min: N, max: N}, "
    'freshness: {column: col, max_age: 2d}, expression: "price >= 0"'
)


def check_against(flow: str, quality: Any, columns: list[str]) -> None:
    """`hygge validate`: the shape and checks against the home's columns (raises)."""
    from hygge.shape import AuditValues, ShapeError, Shaper

    shaped = list(columns)
    if quality.shape is not None:
        shaper = Shaper(quality.shape, flow, AuditValues.now("validate"))
        source = [*columns, *([shaper.file_column] if shaper.file_column else [])]
        try:
            shaped = shaper.columns(source)
        except ShapeError as exc:
            raise ConfigError(exc.message, flow=flow, hint=exc.hint) from None
    for check in quality.checks:
        for column in check.columns:
            if column not in shaped:
                raise ConfigError(
                    f"check {check.label} names column '{column}', which the data does not "
                    f"have; available: {', '.join(shaped)}",
                    flow=flow,
                    hint="use one of the available names (after shaping)",
                )
