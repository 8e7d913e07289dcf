"""load_lab(path): YAML file -> validated `Lab`, or a TopologyError listing every problem."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from .describe import validation_error
from .errors import TopologyError, TopologyIssue
from .files import MAX_TOPOLOGY_BYTES, FileReadError, decode_text, read_limited
from .lab import Lab
from .loader import load_located_yaml
from .merge import apply_inheritance
from .model import LabFile
from .patterns import expand_node_patterns, expand_user_patterns
from .semantics import check_lab


def load_lab_text(text: str, file: Path | None = None) -> Lab:
    """Validate topology text; ``file`` is used for messages and relative secret files."""
    document = load_located_yaml(text, file)
    if not isinstance(document, dict):
        line = getattr(document, "line", None) or _first_content_line(text)
        message = "a topology file is a YAML mapping with 'name' and 'topology'"
        raise TopologyError([TopologyIssue(file, line, "", message)])
    document, issues = expand_node_patterns(document, file)
    if issues:
        raise TopologyError(issues)
    document, issues = apply_inheritance(document, file)
    if issues:
        raise TopologyError(issues)
    document, issues = expand_user_patterns(document, file)
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


def _first_content_line(text: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            return number
    return 1


def load_lab(path: str | Path) -> Lab:
    """Load and validate a topology file."""
    file = Path(path)
    try:
        text = decode_text(read_limited(file, MAX_TOPOLOGY_BYTES))
    except FileReadError as exc:
        raise TopologyError([TopologyIssue(file, exc.line, "", str(exc))]) from None
    return load_lab_text(text, file)
