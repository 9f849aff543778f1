"""The README's two commands are a newcomer's whole set-up, and CI runs exactly them: the tests
must pass with what those commands install, so CI may install nothing before them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    """The bash commands of the README's "Try it" section, in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Try it", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_readme_starts_with_exactly_two_commands() -> None:
    commands = _readme_commands()
    assert len(commands) == 2, commands
    assert all("\n" not in command for command in commands), commands
    assert commands[1].endswith(".venv/bin/python -m pytest"), commands[1]


def test_ci_runs_the_readme_test_command_before_any_install() -> None:
    test_command = _readme_commands()[1]
    lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert test_command in lines, f".ci/run does not run the README's test command {test_command}"
    before = lines[: lines.index(test_command)]
    installs = [line for line in before if re.search(r"apt-get|pip |install|docker-engine", line)]
    assert installs == [], f"CI installs before the README's test command: {installs}"
