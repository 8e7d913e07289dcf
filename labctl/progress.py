"""Progress lines for long steps: what is happening, and how long each stage took."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.started = time.monotonic()
        self.timings: dict[str, float] = {}

    def say(self, text: str) -> None:
        if not self.quiet:
            elapsed = time.monotonic() - self.started
            print(f"[{elapsed:6.2f}s] {text}", file=self.stream, flush=True)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        cpu = time.process_time()
        self.say(f"{name} ...")
        try:
            yield
        except BaseException:
            self.say(f"{name} FAILED after {time.monotonic() - start:.2f}s")
            raise
        took = time.monotonic() - start
        self.timings[name] = took
        # labctl's own CPU (all its threads): on a loaded machine the figure that
        # says what a stage costs, where the wall time says how busy the machine was
        self.say(f"{name} done in {took:.2f}s (cpu {time.process_time() - cpu:.2f}s)")

    def detail(self, stage: str, text: str) -> None:
        """Callback form for sub-steps (image builds report through this)."""
        self.say(f"  {stage}: {text}")
