"""YAML loading that remembers where every key and item came from.

Validation errors must name the file and line; PyYAML's plain loader forgets positions
and silently keeps the last of two duplicate keys, so both are handled here.

The loader also bounds what a hostile or broken file can cost before anything is built
from it: nesting depth (PyYAML composes and constructs recursively), the size of the
document with every alias expanded (an alias bomb is a few lines that expand to billions
of values in whatever walks the result), complex keys, absurd numbers and NUL bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from .errors import TopologyError, TopologyIssue

MAX_DEPTH = 32
MAX_VALUES = 100_000  # scalars + containers, aliases expanded; the seed lab has ~400
MAX_INT_DIGITS = 40

_CORE = "tag:yaml.org,2002:"
# YAML 1.1 resolves `2024-13-45` to a timestamp (and fails to build it) and a bare `=` to
# an unconstructible "value" tag; a topology has neither, so both stay plain strings.
_UNRESOLVED = {_CORE + "timestamp", _CORE + "value"}
_ALLOWED_TAGS = {_CORE + t for t in ("str", "int", "float", "bool", "null", "seq", "map", "merge")}


class LocatedDict(dict):
    """A mapping that knows its own line and the line of each key."""

    line: int = 0
    key_lines: dict[Any, int]


class LocatedList(list):
    """A sequence that knows its own line and the line of each item."""

    line: int = 0
    item_lines: list[int]


class _InputLimit(yaml.YAMLError):
    """The document is over one of the limits above, or uses what a topology cannot."""

    def __init__(self, mark: yaml.Mark, path: tuple[Any, ...], message: str):
        super().__init__(message)
        self.line = mark.line + 1
        self.path = path
        self.message = message


class _LocatingLoader(yaml.SafeLoader):
    """SafeLoader that builds Located* containers, rejects duplicate keys and enforces
    the limits while composing, before any Python object exists."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in _UNRESOLVED]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, text: str):
        super().__init__(text)
        self.duplicate_issues: list[tuple[int, tuple[Any, ...], str]] = []
        self._path: list[Any] = []
        self._sizes: dict[int, int] = {}  # id(node) -> values in it, aliases expanded
        self._node_paths: dict[int, tuple[Any, ...]] = {}
        self._values = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        is_key = isinstance(parent, MappingNode) and index is None
        mark = self.peek_event().start_mark
        if isinstance(parent, MappingNode) and index is not None:
            self._path.append(index.value if isinstance(index, ScalarNode) else "?")
        elif isinstance(parent, SequenceNode):
            self._path.append(index)
        try:
            if len(self._path) > MAX_DEPTH:
                self._fail(mark, f"nested deeper than {MAX_DEPTH} levels")
            alias = self.check_event(AliasEvent)
            node = super().compose_node(parent, index)
            if alias:
                known = self._sizes.get(id(node))
                if known is None:
                    self._fail(mark, "an alias used inside its own anchor (a recursive value)")
                size = known or 0
            else:
                size = 1 + self._children_size(node)
                self._sizes[id(node)] = size
                self._node_paths[id(node)] = tuple(self._path)
                self._check_node(node, mark)
            self._values += size if alias else 1
            if self._values > MAX_VALUES:
                self._fail(
                    mark,
                    f"too large: more than {MAX_VALUES:,} values with aliases expanded"
                    + (" (an alias bomb?)" if alias else ""),
                )
            if is_key and not isinstance(node, ScalarNode):
                kind = "a list" if isinstance(node, SequenceNode) else "a mapping"
                self._fail(mark, f"a key must be a plain value, not {kind} (a '?' complex key)")
            return node
        finally:
            if not (parent is None or is_key):
                self._path.pop()

    def _children_size(self, node: Any) -> int:
        if isinstance(node, SequenceNode):
            return sum(self._sizes[id(child)] for child in node.value)
        if isinstance(node, MappingNode):
            return sum(self._sizes[id(k)] + self._sizes[id(v)] for k, v in node.value)
        return 0

    def _check_node(self, node: Any, mark: yaml.Mark) -> None:
        if node.tag not in _ALLOWED_TAGS:
            self._fail(mark, f"YAML tag {node.tag!r} is not allowed in a topology")
        if isinstance(node, ScalarNode):
            if "\0" in node.value:
                self._fail(mark, "a NUL character in a value")
            if node.tag == _CORE + "int" and len(node.value) > MAX_INT_DIGITS:
                self._fail(
                    mark, f"a number of {len(node.value):,} digits (at most {MAX_INT_DIGITS})"
                )

    def _fail(self, mark: yaml.Mark, message: str) -> None:
        raise _InputLimit(mark, tuple(self._path), message)

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, OverflowError) as exc:  # e.g. `!!int abc`
            path = self._node_paths.get(id(node), ())
            raise _InputLimit(node.start_mark, path, f"cannot read this value: {exc}") from None


def _construct_mapping(loader: _LocatingLoader, node: yaml.MappingNode) -> LocatedDict:
    loader.flatten_mapping(node)
    result = LocatedDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    path = loader._node_paths.get(id(node), ())
    for key_node, value_node in node.value:
        # Every key of a topology is a name: `1:` or `yes:` is the text, not an int or
        # True (which would even collide: 1 == True).
        key = key_node.value if isinstance(key_node, ScalarNode) else None
        line = key_node.start_mark.line + 1
        if key in result.key_lines:
            loader.duplicate_issues.append(
                (
                    line,
                    (*path, key),
                    f"duplicate key {key!r} (first defined on line {result.key_lines[key]})",
                )
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


def _construct_sequence(loader: _LocatingLoader, node: yaml.SequenceNode) -> LocatedList:
    result = LocatedList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_LocatingLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LocatingLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence
)


def dotted(path: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in path)


def load_located_yaml(text: str, file: Path | None) -> Any:
    """Parse YAML text into Located* containers; syntax errors become TopologyError."""
    loader = None
    try:
        loader = _LocatingLoader(text)  # checks the characters of the whole text
        document = loader.get_single_data()
    except _InputLimit as exc:
        raise TopologyError(
            [TopologyIssue(file, exc.line, dotted(exc.path), exc.message)]
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or str(exc)
        if exc.context and exc.context_mark and exc.problem_mark:
            problem += f" ({exc.context} on line {exc.context_mark.line + 1})"
        raise TopologyError([TopologyIssue(file, line, "", f"YAML syntax: {problem}")]) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        character = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise TopologyError(
            [TopologyIssue(file, line, "", f"YAML: character #x{character:04x} is not allowed")]
        ) from None
    except yaml.YAMLError as exc:
        raise TopologyError([TopologyIssue(file, None, "", f"YAML: {exc}")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if loader.duplicate_issues:
        raise TopologyError(
            [
                TopologyIssue(file, line, dotted(path), msg)
                for line, path, msg in loader.duplicate_issues
            ]
        )
    return document


def line_of(document: Any, path: tuple[Any, ...]) -> int | None:
    """Best line for a field path: the deepest located container or key along the path.

    Path elements that do not exist in the document (e.g. pydantic's union tags) are skipped.
    """
    line = getattr(document, "line", None)
    current = document
    for element in path:
        if isinstance(current, LocatedDict) and _has_key(current, element):
            line = current.key_lines.get(element, line)
            current = current[element]
        elif (
            isinstance(current, LocatedList)
            and isinstance(element, int)
            and (0 <= element < len(current))
        ):
            line = current.item_lines[element]
            current = current[element]
    return line


def _has_key(mapping: dict, key: Any) -> bool:
    try:
        return key in mapping
    except TypeError:  # an unhashable path element
        return False
