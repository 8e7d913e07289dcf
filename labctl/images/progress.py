"""Progress reporting for image builds.

The builder reports through a plain callback, `progress(stage, detail)`: `stage` names the
image and step ("base: debootstrap", "node: build"), `detail` says how far it got (counts,
elapsed seconds). A new stage means the previous one ended. `ConsoleProgress` renders that
as one rewritten status line on a terminal, and as plain, rate-limited lines elsewhere (CI
logs).
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from typing import TextIO

ProgressFn = Callable[[str, str], None]


def no_progress(stage: str, detail: str) -> None:
    """A progress callback that shows nothing."""


class ConsoleProgress:
    """Render progress callbacks on a stream (stderr by default)."""

    def __init__(
        self, stream: TextIO | None = None, *, tty: bool | None = None, interval: float = 10.0
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty() if tty is None else tty
        self._interval = interval  # non-TTY: at most one line per stage per interval
        self._stage: str | None = None
        self._last_line_at = 0.0

    def __call__(self, stage: str, detail: str) -> None:
        line = f"{stage}: {detail}" if detail else stage
        now = time.monotonic()
        if self._tty:
            if self._stage is not None and stage != self._stage:
                self._stream.write("\n")  # keep the finished stage's last line
            self._stream.write("\r\x1b[K" + line)
        elif stage != self._stage or now - self._last_line_at >= self._interval:
            self._stream.write(line + "\n")
            self._last_line_at = now
        self._stage = stage
        self._stream.flush()

    def close(self) -> None:
        """End the status line (TTY) so later output starts on a fresh line."""
        if self._tty and self._stage is not None:
            self._stream.write("\n")
            self._stream.flush()
        self._stage = None


_DEBOOTSTRAP_STEP = re.compile(r"^I: (Retrieving|Validating|Extracting|Unpacking|Configuring) ")


class DebootstrapCounter:
    """Turn debootstrap's `I:` lines into a short status: phase and package counts.

    debootstrap announces each package per phase ("I: Retrieving libc6 2.36-9", then
    Validating, Extracting, Unpacking, Configuring). The number of packages is known once
    retrieval is over, so later phases show "n/total".
    """

    _PHASE_NAMES = {
        "Retrieving": "retrieving",
        "Validating": "retrieving",  # follows each download (or replaces it, from the cache)
        "Extracting": "extracting",
        "Unpacking": "unpacking",
        "Configuring": "configuring",
    }

    def __init__(self) -> None:
        self.phase = "starting"
        self.counts: dict[str, int] = {}
        self.total: int | None = None
        self.last_error: str | None = None
        self.retrieved: set[tuple[str, str]] = set()  # (package, version)

    def feed(self, line: str) -> None:
        if line.startswith(("E: ", "W: Failure")):
            self.last_error = line[3:].strip()
        match = _DEBOOTSTRAP_STEP.match(line)
        if match is None:
            return
        verb = match.group(1)
        words = line.split()
        # package lines: "I: Retrieving <pkg> <version>", "I: Unpacking <pkg>..."; others
        # ("I: Retrieving InRelease", "I: Unpacking required packages...") name a step
        if verb in ("Retrieving", "Validating"):
            package = len(words) == 4
        else:
            package = len(words) == 3 and words[2].endswith("...")
        phase = self._PHASE_NAMES[verb]
        if phase != "retrieving" and self.total is None:
            self.total = self.counts.get("retrieving") or None
        self.phase = phase
        # a cached package is only validated, never retrieved: count validations
        if not package or verb == "Retrieving":
            return
        self.counts[phase] = self.counts.get(phase, 0) + 1
        if verb == "Validating":
            self.retrieved.add((words[2], words[3]))

    def status(self) -> str:
        count = self.counts.get(self.phase)
        if count is None:
            return self.phase
        if self.total and self.phase != "retrieving":
            return f"{self.phase} {min(count, self.total)}/{self.total} packages"
        return f"{self.phase} {count} packages"
