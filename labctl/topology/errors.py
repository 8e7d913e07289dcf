"""Topology errors that point at the file, line and field that caused them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import LabctlError

# A file with a million unknown keys must not print a million lines.
MAX_SHOWN_ISSUES = 10


def type_name(value: Any) -> str:
    """What kind of YAML value this is, for messages that must not show the value."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "null" if value is None else f"a {type(value).__name__}"


@dataclass(frozen=True)
class TopologyIssue:
    """One problem found in a topology file."""

    file: Path | None
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = str(self.file) if self.file else "<topology>"
        if self.line:
            where += f":{self.line}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class TopologyError(LabctlError):
    """Raised when a topology cannot be loaded: the first issues found, one per line, and
    how many more there were (`more`: issues found but not even built into messages)."""

    prefix = ""  # its lines start with file:line already

    def __init__(self, issues: list[TopologyIssue], more: int = 0):
        ordered = sorted(issues, key=lambda i: (i.line or 0, i.field))
        self.issues = ordered[:MAX_SHOWN_ISSUES]
        self.hidden = len(ordered) - len(self.issues) + more
        lines = [str(i) for i in self.issues]
        if self.hidden:
            lines.append(f"... and {self.hidden:,} more error{'s' if self.hidden > 1 else ''}")
        super().__init__("\n".join(lines))


class UnknownNodeError(LabctlError, KeyError):
    """A node name the lab does not have; the message lists the ones it has."""

    status = 2

    def __str__(self) -> str:  # KeyError's own str() is the repr of its argument
        return str(self.args[0])
