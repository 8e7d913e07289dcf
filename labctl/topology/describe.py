"""pydantic's validation errors -> one-line messages naming the YAML field, never a secret."""

from __future__ import annotations

import difflib
import functools
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from .errors import MAX_SHOWN_ISSUES, TopologyError, TopologyIssue, type_name
from .loader import dotted, line_of
from .model import KINDS, LabFile, Secret


def _all_fields() -> list[tuple[str, Any]]:
    """(YAML key, FieldInfo) of every field of every topology section."""
    fields: list[tuple[str, Any]] = []
    seen: set[type] = set()

    def visit(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, info in model.model_fields.items():
            fields.append((info.alias or name, info))
            for candidate in _models_in(info.annotation):
                visit(candidate)

    visit(LabFile)
    return fields


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    found = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        found.append(annotation)
    for arg in getattr(annotation, "__args__", ()) or ():
        found.extend(_models_in(arg))
    origin = getattr(annotation, "__origin__", None)
    if origin is not None and origin is not annotation:
        found.extend(_models_in(origin))
    return found


@functools.cache
def _field_names() -> list[str]:
    """Every key any topology section accepts, for 'did you mean' hints."""
    return sorted({key for key, _ in _all_fields()})


@functools.cache
def _secret_field_names() -> frozenset[str]:
    """YAML keys of the secret fields (psk, password, ...): their values are never echoed."""
    return frozenset(key for key, info in _all_fields() if info.annotation is Secret)


def is_secret_loc(loc: tuple[Any, ...]) -> bool:
    """Whether a field path goes through a secret field."""
    secret = _secret_field_names()
    return any(isinstance(part, str) and part in secret for part in loc)


_SHOWN_CHARS = 60


def shown(value: Any) -> str:
    """repr() of a value from the file, cut short: a message never carries a 1 MB key."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def describe_error(error: ErrorDetails, secret: bool = False) -> str:
    kind = error["type"]
    loc = error["loc"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        close = difflib.get_close_matches(key, _field_names(), n=1) if len(key) < 40 else []
        return f"unknown field {shown(key)}" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag")
        return f"unknown kind {shown(tag)} (kinds: {', '.join(KINDS)})"
    if kind == "union_tag_not_found" and not isinstance(error.get("input"), dict):
        got = type_name(error.get("input"))
        return f"a node is a mapping with a 'kind' (kinds: {', '.join(KINDS)}), not {got}"
    if kind == "union_tag_not_found":
        return f"missing 'kind' (kinds: {', '.join(KINDS)})"
    if kind == "missing":
        return f"missing required field {str(loc[-1])!r}"
    if kind == "string_pattern_mismatch" and not secret:
        return f"invalid value {shown(error.get('input'))} (must match {error['ctx']['pattern']})"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    value = error.get("input")
    if secret or kind.startswith("secret_"):
        return message  # the field and what it takes; the value never
    if isinstance(value, str | int | float) and len(str(value)) < _SHOWN_CHARS:
        message += f" (got {value!r})"
    return message


def validation_error(exc: ValidationError, document: Any, file: Path | None) -> TopologyError:
    """pydantic's errors as TopologyIssues (file:line and the YAML field path); messages
    are built for the first few only (a file with 50,000 unknown keys has 50,000 errors)."""
    located = []
    for error in exc.errors(include_url=False):
        loc = yaml_path(error["loc"])
        if error["type"].startswith("union_tag") and isinstance(error.get("input"), dict):
            loc = (*loc, "kind")
        located.append((line_of(document, loc) or 0, dotted(loc), loc, error))
    located.sort(key=lambda item: item[:2])
    issues: list[TopologyIssue] = []
    alternatives: dict[tuple[int, str], list[str]] = {}  # a union's failed alternatives
    for line, _, loc, error in located:
        if _maybe_union_member(document, loc, error):
            wanted = error["msg"].removeprefix("Input should be ").split(",")[0]
            alternatives.setdefault((line, dotted(loc[:-1])), []).append(wanted)
    for considered, (line, field, loc, error) in enumerate(located, start=1):
        message = describe_error(error, is_secret_loc(loc))
        union = alternatives.get((line, dotted(loc[:-1])), [])
        if len(union) > 1 and _maybe_union_member(document, loc, error):
            # One line for the value, not one per type it could have been.
            field = dotted(loc[:-1])
            types = list(dict.fromkeys(union))
            got = type_name(error.get("input"))
            message = f"expected {', '.join(types[:-1])} or {types[-1]}, not {got}"
        issue = TopologyIssue(file, line or None, field, message)
        if issue not in issues:
            issues.append(issue)
        if len(issues) == MAX_SHOWN_ISSUES:
            return TopologyError(issues, more=len(located) - considered)
    return TopologyError(issues)


def _maybe_union_member(document: Any, loc: tuple[Any, ...], error: ErrorDetails) -> bool:
    """pydantic names each failed alternative of a union (str | list[str]) in the error's
    path: a last element that is not a key of the file, shared by several errors."""
    if len(loc) < 2 or not isinstance(loc[-1], str):
        return False
    if error["type"] == "missing" or error["type"].startswith("union_tag"):
        return False
    parent = _value_at(document, loc[:-1])
    return parent is not _ABSENT and not (isinstance(parent, dict) and loc[-1] in parent)


_ABSENT = object()


def _value_at(document: Any, path: tuple[Any, ...]) -> Any:
    value = document
    for element in path:
        in_list = isinstance(value, list) and isinstance(element, int) and element < len(value)
        if not (in_list or (isinstance(value, dict) and element in value)):
            return _ABSENT
        value = value[element]
    return value


def yaml_path(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """pydantic puts the union tag after a node's name (nodes.pix.pat-firewall.pat); drop it,
    and validator labels, so the path names YAML keys only."""
    parts = list(loc)
    if len(parts) > 3 and parts[:2] == ["topology", "nodes"] and parts[3] in KINDS:
        del parts[3]
    return tuple(
        p for p in parts if not (isinstance(p, str) and (p.startswith("function-") or p == "[key]"))
    )
