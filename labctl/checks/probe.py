"""LabProbe: the real Probe, reading a running lab through its management plane."""

from __future__ import annotations

import shlex
from typing import Any

from ..lifecycle import LabHandle
from ..state import collect
from .evaluate import parse_ping


class LabProbe:
    def __init__(self, handle: LabHandle):
        self.handle = handle

    def table(self, node: str, what: str) -> list[dict[str, Any]]:
        records, _ = collect(self.handle, node, what)
        if isinstance(records, dict):
            return [records]
        return list(records or [])

    def ping(self, source: str, to: str, count: int, size: int | None) -> tuple[int, int, str]:
        argv = ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "1"]
        if size is not None:
            argv += ["-s", str(size)]
        result = self.handle.session(source).run(shlex.join([*argv, to]), timeout=count + 10)
        sent, received = parse_ping(result.stdout)
        return sent, received, result.stdout + result.stderr
