"""One commit, one set of versions: constraints.txt pins every dependency of hygge, and the
image, the README's install commands and CI all install through it."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep, f"constraints.txt: not a name==version pin: {line!r}"
        pins[canonicalize_name(name)] = Version(version.strip())
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"].values()
    every = [*project["dependencies"], *(r for extra in extras for r in extra)]
    return [r for r in map(Requirement, every) if canonicalize_name(r.name) != "hygge"]


def test_constraints_pin_every_dependency_within_its_range() -> None:
    pins = _pins()
    for requirement in _requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not pinned: run deploy/scripts/lock.sh"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} is outside pyproject's {requirement}: run deploy/scripts/lock.sh"
        )
    assert "hygge" not in pins


def test_the_image_installs_through_the_constraints() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^COPY [^\n]*\bconstraints\.txt\b", dockerfile, re.M), dockerfile
    installs = re.findall(r"pip install [^\n]*", dockerfile)
    assert installs and all("-c constraints.txt" in line for line in installs), installs
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "!constraints.txt" in ignored, "the build context must include constraints.txt"


def test_readme_and_ci_install_through_the_constraints() -> None:
    for path in ("README.md", ".ci/run"):
        installs = re.findall(r"pip install [^\n`]*", (ROOT / path).read_text())
        assert installs and all("-c constraints.txt" in line for line in installs), (path, installs)
    lock = ROOT / "deploy" / "scripts" / "lock.sh"
    assert os.access(lock, os.X_OK), "the way to refresh the pins"
