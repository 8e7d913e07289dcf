"""load_lab(path): YAML file -> validated `Lab`, or a TopologyError listing every problem."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import TopologyError, TopologyIssue
from .lab import Lab
from .loader import line_of, load_located_yaml
from .merge import apply_inheritance
from .model import KINDS, LabFile
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


def _describe(error: dict[str, Any]) -> str:
    global _FIELD_NAMES
    kind = error["type"]
    loc = error["loc"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        _FIELD_NAMES = _FIELD_NAMES or _all_field_names()
        close = difflib.get_close_matches(key, sorted(_FIELD_NAMES), n=1)
        return f"unknown field {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag")
        return f"unknown kind {tag!r} (kinds: {', '.join(KINDS)})"
    if kind == "union_tag_not_found":
        return f"missing 'kind' (kinds: {', '.join(KINDS)})"
    if kind == "missing":
        return f"missing required field {str(loc[-1])!r}"
    if kind == "string_pattern_mismatch":
        return f"invalid value {error.get('input')!r} (must match {error['ctx']['pattern']})"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    value = error.get("input")
    if isinstance(value, str | int | float) and len(str(value)) < 60:
        message += f" (got {value!r})"
    return message


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
        found = []
        for error in exc.errors():
            loc = _yaml_path(error["loc"])
            if error["type"].startswith("union_tag"):
                loc = (*loc, "kind")
            dotted = ".".join(str(p) for p in loc)
            found.append(TopologyIssue(file, line_of(document, loc), dotted, _describe(error)))
        raise TopologyError(_unique(found)) from None
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


def _unique(issues: list[TopologyIssue]) -> list[TopologyIssue]:
    seen, result = set(), []
    for issue in issues:
        if issue not in seen:
            seen.add(issue)
            result.append(issue)
    return result


def load_lab(path: str | Path) -> Lab:
    """Load and validate a topology file."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise TopologyError(
            [TopologyIssue(file, None, "", f"cannot read: {exc.strerror}")]
        ) from None
    return load_lab_text(text, file)
