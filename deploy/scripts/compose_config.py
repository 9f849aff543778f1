"""docker-compose.yml as Compose resolves it with an env file, without a compose tool.

    python deploy/scripts/compose_config.py [--env-file .env.example] [docker-compose.yml]

Prints the resolved file as YAML (anchors and `<<` merges expanded, `${VAR:-default}`
interpolated: the environment first, then the env file, as Compose does) for
`check-jsonschema --builtin-schema vendor.compose-spec`; exits 1 naming what is wrong. It
exists so that deploy/scripts/validate.sh and the tests need only what `pip install -e '.[dev]'`
installs: the PyPI packages that ship a compose binary fetch or build it at install time.
Where Compose v2 or docker-compose 1.29 is installed, validate.sh runs it as well.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from hygge.interpolate import UndefinedVariable, interpolate

# What hygge.interpolate resolves; any other `$` form of Compose (`${VAR-x}`, `${VAR:?err}`,
# `$VAR`) is refused rather than passed through unresolved.
_SUPPORTED = re.compile(r"\$\$|\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}")
# Durations are plain strings to the compose spec; Compose parses them as Go durations ("1m30s").
_DURATION = re.compile(r"(\d+(\.\d+)?(ns|us|ms|s|m|h))+")
_HEALTHCHECK_DURATIONS = ("interval", "timeout", "start_period", "start_interval")


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a Compose env file (comments, blank lines and quotes as Compose)."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{path}:{number}: not KEY=VALUE: {line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def resolve(compose_file: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """The compose file with every variable replaced; ValueError names a variable left over."""
    document = yaml.safe_load(compose_file.read_text())
    _refuse_unsupported(document, compose_file, ())
    try:
        resolved = interpolate(document, env)
    except UndefinedVariable as error:
        where = ".".join(map(str, error.path))
        raise ValueError(f"{compose_file}: {where}: ${{{error.name}}} is not set") from None
    for name, service in (resolved.get("services") or {}).items():
        _check_durations(service or {}, f"{compose_file}: services.{name}")
    return resolved


def _check_durations(service: dict[str, Any], where: str) -> None:
    durations = {"stop_grace_period": service.get("stop_grace_period")}
    health = service.get("healthcheck") or {}
    durations |= {f"healthcheck.{key}": health.get(key) for key in _HEALTHCHECK_DURATIONS}
    for key, value in durations.items():
        if value is not None and not _DURATION.fullmatch(str(value)):
            raise ValueError(f"{where}.{key}: {value!r} is not a duration such as 90s or 1m30s")


def _refuse_unsupported(value: Any, compose_file: Path, path: tuple[Any, ...]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_unsupported(item, compose_file, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_unsupported(item, compose_file, (*path, index))
    elif isinstance(value, str) and "$" in _SUPPORTED.sub("", value):
        where = ".".join(map(str, path))
        raise ValueError(
            f"{compose_file}: {where}: {value!r}: use ${{VAR}} or ${{VAR:-default}} "
            "(the forms this check resolves), or $$ for a literal $"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("compose_file", nargs="?", default="docker-compose.yml", type=Path)
    parser.add_argument("--env-file", type=Path)
    args = parser.parse_args(argv)
    try:
        env = read_env_file(args.env_file) if args.env_file else {}
        env.update(os.environ)  # the shell's environment wins over the env file, as in Compose
        resolved = resolve(args.compose_file, env)
    except (OSError, ValueError, yaml.YAMLError) as error:
        print(f"compose config: {error}", file=sys.stderr)
        return 1
    yaml.safe_dump(resolved, sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
