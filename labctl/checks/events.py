"""Progress events of a test run, as they happen: one JSON object per line.

`labctl test` appends them to REPORT_DIR/events.jsonl (the web console follows that file
live, whoever started the run) and hands them to an optional listener. Every line passes
through `redact`: a step may quote a secret a scenario set.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..topology.secrets import redact

EVENTS_FILE = "events.jsonl"

Listener = Callable[[dict[str, Any]], None]


class RunEvents:
    """Where a run reports: a JSON-lines file, a listener, both or neither."""

    def __init__(self, path: Path | None = None, listener: Listener | None = None):
        self.path = path
        self.listener = listener
        self._lock = threading.Lock()  # traffic steps run in threads
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")  # a new run starts a new file

    def emit(self, event_type: str, /, **fields: Any) -> None:
        event = {"type": event_type, "time": round(time.time(), 3), **fields}
        line = redact(json.dumps(event, default=str))
        with self._lock:
            if self.path is not None:
                with self.path.open("a") as handle:
                    handle.write(line + "\n")
            if self.listener is not None:
                self.listener(json.loads(line))


def read_events(path: Path) -> list[dict[str, Any]]:
    """The events written so far; a line being written (no newline yet) is left out."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    events = []
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events
