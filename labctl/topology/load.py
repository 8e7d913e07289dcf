"""load_lab(path): YAML file -> validated `Lab`, or a TopologyError listing every problem."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import MAX_SHOWN_ISSUES, TopologyError, TopologyIssue
from .files import MAX_TOPOLOGY_BYTES, FileReadError, decode_text, read_limited
from .lab import Lab
from .loader import dotted, line_of, load_located_yaml
from .merge import apply_inheritance
from .model import KINDS, LabFile, Secret
from .semantics import check_lab


def _all_field_names() -> set[str]:
    """Every key any topology section accepts, for 'did you mean' hints."""
    names: set[str] = set()
    seen: set[type] = set()

    def visit(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, info in model.model_fields.items():
            names.add(info.alias or name)
            for candidate in _models_in(info.annotation):
                visit(candidate)

    visit(LabFile)
    return names


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    found = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        found.append(annotation)
    for arg in getattr(annotation, "__args__", ()) or ():
        found.extend(_models_in(arg))
    for meta in getattr(annotation, "__metadata__", ()) or ():
        del meta
    origin = getattr(annotation, "__origin__", None)
    if origin is not None and origin is not annotation:
        found.extend(_models_in(origin))
    return found


_FIELD_NAMES: set[str] | None = None
_SECRET_FIELDS: set[str] | None = None
_SHOWN_CHARS = 60


def _secret_field_names() -> set[str]:
    """YAML keys of the secret fields (psk, password, ...): their values are never echoed."""
    names: set[str] = set()
    seen: set[type] = set()

    def visit(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, info in model.model_fields.items():
            if info.annotation is Secret:
                names.add(info.alias or name)
            for candidate in _models_in(info.annotation):
                visit(candidate)

    visit(LabFile)
    return names


def is_secret_loc(loc: tuple[Any, ...]) -> bool:
    global _SECRET_FIELDS
    _SECRET_FIELDS = _SECRET_FIELDS or _secret_field_names()
    return any(isinstance(part, str) and part in _SECRET_FIELDS for part in loc)


def shown(value: Any) -> str:
    """repr() of a value from the file, cut short: a message never carries a 1 MB key."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _describe(error: dict[str, Any], secret: bool = False) -> str:
    global _FIELD_NAMES
    kind = error["type"]
    loc = error["loc"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        _FIELD_NAMES = _FIELD_NAMES or _all_field_names()
        close = difflib.get_close_matches(key, sorted(_FIELD_NAMES), n=1) if len(key) < 40 else []
        return f"unknown field {shown(key)}" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag")
        return f"unknown kind {shown(tag)} (kinds: {', '.join(KINDS)})"
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
        loc = _yaml_path(error["loc"])
        if error["type"].startswith("union_tag"):
            loc = (*loc, "kind")
        located.append((line_of(document, loc) or 0, dotted(loc), loc, error))
    located.sort(key=lambda item: item[:2])
    issues: list[TopologyIssue] = []
    for considered, (line, field, loc, error) in enumerate(located, start=1):
        issue = TopologyIssue(file, line or None, field, _describe(error, is_secret_loc(loc)))
        if issue not in issues:
            issues.append(issue)
        if len(issues) == MAX_SHOWN_ISSUES:
            return TopologyError(issues, more=len(located) - considered)
    return TopologyError(issues)


def load_lab_text(text: str, file: Path | None = None) -> Lab:
    """Validate topology text; ``file`` is used for messages and relative secret files."""
    document = load_located_yaml(text, file)
    if not isinstance(document, dict):
        raise TopologyError(
            [
                TopologyIssue(
                    file, 1, "", "a topology file is a YAML mapping with 'name' and 'topology'"
                )
            ]
        )
    document, issues = apply_inheritance(document, file)
    if issues:
        raise TopologyError(issues)
    base_dir = file.parent if file else Path.cwd()
    try:
        spec = LabFile.model_validate(document, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise validation_error(exc, document, file) from None
    lab = Lab(spec=spec, source=file)
    issues = check_lab(lab, document)
    if issues:
        raise TopologyError(issues)
    return lab


def _yaml_path(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """pydantic puts the union tag after a node's name (nodes.pix.pat-firewall.pat); drop it,
    and validator labels, so the path names YAML keys only."""
    parts = list(loc)
    if len(parts) > 3 and parts[:2] == ["topology", "nodes"] and parts[3] in KINDS:
        del parts[3]
    return tuple(
        p for p in parts if not (isinstance(p, str) and (p.startswith("function-") or p == "[key]"))
    )


def load_lab(path: str | Path) -> Lab:
    """Load and validate a topology file."""
    file = Path(path)
    try:
        text = decode_text(read_limited(file, MAX_TOPOLOGY_BYTES))
    except FileReadError as exc:
        raise TopologyError([TopologyIssue(file, exc.line, "", str(exc))]) from None
    return load_lab_text(text, file)
