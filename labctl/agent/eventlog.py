"""The agent's event log, in the spirit of the seed's VPN 3000 / VPN Client logs.

Lines look like ``12 2026-11-29 16:00:01.123 SEV=4 IKE/41 171.69.89.78 <text>``:
a running number, time, severity (1 fault .. 9 debug, as a VPN 3000 numbers them),
class/id and the peer. Secrets never reach this module: callers pass only public facts.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

LEVELS = {"error": 3, "warning": 4, "info": 5, "debug": 9}


class EventLog:
    def __init__(self, stream: TextIO | None = None, level: str = "info"):
        self.stream = stream or sys.stderr
        self.threshold = LEVELS.get(level, 5)
        self.number = 0

    def set_level(self, level: str) -> None:
        self.threshold = LEVELS.get(level, 5)

    def log(self, severity: int, event_class: str, text: str, peer: str = "") -> None:
        if severity > self.threshold:
            return
        self.number += 1
        now = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        millis = int((now % 1) * 1000)
        line = f"{self.number} {stamp}.{millis:03d} SEV={severity} {event_class} {peer} {text}"
        print(line.replace("  ", " "), file=self.stream, flush=True)

    def info(self, event_class: str, text: str, peer: str = "") -> None:
        self.log(5, event_class, text, peer)

    def warning(self, event_class: str, text: str, peer: str = "") -> None:
        self.log(4, event_class, text, peer)

    def error(self, event_class: str, text: str, peer: str = "") -> None:
        self.log(3, event_class, text, peer)

    def debug(self, event_class: str, text: str, peer: str = "") -> None:
        self.log(9, event_class, text, peer)
