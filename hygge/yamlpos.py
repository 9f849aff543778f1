"""YAML loading that remembers where every key and value came from, for file:line errors."""

from __future__ import annotations

from typing import Any

import yaml

Path_ = tuple[str | int, ...]

# libyaml's loader when present: the same nodes and marks, about 5x faster on big files.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Located:
    """Parsed YAML data plus the line of every node, addressed by its key path."""

    def __init__(self, data: Any, lines: dict[Path_, int]) -> None:
        self.data = data
        self.lines = lines

    def line(self, path: Path_) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


def load(text: str) -> Located:
    """Parse YAML text; raises yaml.YAMLError (with a problem_mark) when it is malformed."""
    node = yaml.compose(text, Loader=_LOADER)
    if node is None:
        return Located(None, {(): 1})
    lines: dict[Path_, int] = {}
    data = _build(node, (), lines)
    return Located(data, lines)


def _build(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if key in result:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}'", key_node.start_mark
                )
            lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = _build(value_node, (*path, key), lines)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), lines) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.constructor.ConstructorError(
            None, None, "a key must be a plain value", node.start_mark
        )
    return yaml.SafeLoader(" ").construct_object(node, deep=True)
