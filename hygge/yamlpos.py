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


class TooManyAliases(ValueError):
    """Aliases would expand into more nodes than any flows file needs (an "alias bomb")."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


# Nodes that aliases may add in all. Generous for any real flows.yml (a named home reused by
# thousands of flows adds a few nodes each), yet it stops nine levels of nine aliases (387
# million nodes) after a moment and a few MB: the composed document stays a small graph;
# only turning it into Python data would expand it.
MAX_ALIAS_NODES = 100_000


def load(text: str) -> Located:
    """Parse YAML text; raises yaml.YAMLError (with a problem_mark) when it is malformed, and
    TooManyAliases when its aliases expand beyond MAX_ALIAS_NODES."""
    node = yaml.compose(text, Loader=_LOADER)
    if node is None:
        return Located(None, {(): 1})
    builder = _Builder()
    data = builder.build(node, ())
    return Located(data, builder.lines)


class _Builder:
    """Turns the composed node graph into data, recording lines and counting alias expansion.

    An alias is the very node of its anchor met again, so a node seen before is an expansion.
    """

    def __init__(self) -> None:
        self.lines: dict[Path_, int] = {}
        self._seen: set[int] = set()
        self._open: set[int] = set()  # nodes being built: meeting one again is a cycle
        self._expanded = 0

    def build(self, node: yaml.Node, path: Path_, aliased: bool = False) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if id(node) in self._open:
            raise TooManyAliases("a YAML alias refers to a node that contains it", self._line(path))
        aliased = aliased or id(node) in self._seen
        if aliased:
            self._expanded += 1
            if self._expanded > MAX_ALIAS_NODES:
                raise TooManyAliases(
                    f"too many YAML aliases: they expand to more than {MAX_ALIAS_NODES:,} nodes",
                    self._line(path),
                )
        self._seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            self._open.add(id(node))
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = _scalar(key_node)
                if key in result:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key '{key}'", key_node.start_mark
                    )
                self.lines[(*path, key)] = key_node.start_mark.line + 1
                result[key] = self.build(value_node, (*path, key), aliased)
            self._open.discard(id(node))
            return result
        if isinstance(node, yaml.SequenceNode):
            self._open.add(id(node))
            items = [self.build(item, (*path, i), aliased) for i, item in enumerate(node.value)]
            self._open.discard(id(node))
            return items
        return _scalar(node)

    def _line(self, path: Path_) -> int | None:
        """The line of the key that holds the alias (an alias node has no mark of its own)."""
        while path and isinstance(path[-1], int):
            path = path[:-1]
        return self.lines.get(path)


def _scalar(node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.constructor.ConstructorError(
            None, None, "a key must be a plain value", node.start_mark
        )
    return yaml.SafeLoader(" ").construct_object(node, deep=True)
