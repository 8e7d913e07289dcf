"""YAML loading that remembers where every key and item came from.

Validation errors must name the file and line; PyYAML's plain loader forgets positions
and silently keeps the last of two duplicate keys, so both are handled here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import TopologyError, TopologyIssue


class LocatedDict(dict):
    """A mapping that knows its own line and the line of each key."""

    line: int = 0
    key_lines: dict[Any, int]


class LocatedList(list):
    """A sequence that knows its own line and the line of each item."""

    line: int = 0
    item_lines: list[int]


class _LocatingLoader(yaml.SafeLoader):
    """SafeLoader that builds Located* containers and rejects duplicate keys."""

    duplicate_issues: list[tuple[int, str]]


def _construct_mapping(loader: _LocatingLoader, node: yaml.MappingNode) -> LocatedDict:
    loader.flatten_mapping(node)
    result = LocatedDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in result.key_lines:
            loader.duplicate_issues.append(
                (line, f"duplicate key {key!r} (first defined on line {result.key_lines[key]})")
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


def load_located_yaml(text: str, file: Path | None) -> Any:
    """Parse YAML text into Located* containers; syntax errors become TopologyError."""
    loader = _LocatingLoader(text)
    loader.duplicate_issues = []
    try:
        document = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or str(exc)
        raise TopologyError([TopologyIssue(file, line, "", f"YAML syntax: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise TopologyError([TopologyIssue(file, None, "", f"YAML: {exc}")]) from None
    finally:
        loader.dispose()
    if loader.duplicate_issues:
        raise TopologyError(
            [TopologyIssue(file, line, "", msg) for line, msg in loader.duplicate_issues]
        )
    return document


def line_of(document: Any, path: tuple[Any, ...]) -> int | None:
    """Best line for a field path: the deepest located container or key along the path.

    Path elements that do not exist in the document (e.g. pydantic's union tags) are skipped.
    """
    line = getattr(document, "line", None)
    current = document
    for element in path:
        if isinstance(current, LocatedDict) and element in current:
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
