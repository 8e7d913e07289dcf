"""A logger that imports :mod:`logging` on its first message.

The agent's module loggers speak only when something unexpected fails (a handler raising,
a TUN read error); importing the logging package up front cost every agent ~15-20 ms of
CPU at start, one agent per client container.
"""

from __future__ import annotations

from typing import Any


class LazyLogger:
    """``logging.getLogger(name)``, looked up when a method is first used."""

    __slots__ = ("_logger", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, attribute: str) -> Any:
        if self._logger is None:
            import logging

            self._logger = logging.getLogger(self._name)
        return getattr(self._logger, attribute)
