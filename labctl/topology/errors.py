"""Topology errors that point at the file, line and field that caused them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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


class TopologyError(Exception):
    """Raised when a topology cannot be loaded; carries every issue found, one per line."""

    def __init__(self, issues: list[TopologyIssue]):
        self.issues = sorted(issues, key=lambda i: (i.line or 0, i.field))
        super().__init__("\n".join(str(i) for i in self.issues))
