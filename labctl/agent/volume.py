"""Kilobyte lifetimes: the engine sees no ESP, so once a second the agent tells it what
each child with a volume limit has carried (the data plane's per-SA byte counters) -- only
once that is near enough the limit for the engine to act (a report below it changed
nothing and cost an engine call per child per second)."""

from __future__ import annotations

from collections.abc import Callable

from ..ike import Output
from ..ike.engine import EngineBase
from ..ike.exchanges.volume import report_threshold
from .dataplane import Dataplane


def report_volumes(
    engine: EngineBase, dataplane: Dataplane, apply: Callable[[Output], None], now: float
) -> None:
    for sa in list(engine.sas.values()):
        for child in list(sa.children.values()):
            threshold = report_threshold(engine, child)
            if threshold is None:
                continue
            carried = dataplane.carried(child.inbound_spi, child.outbound_spi)
            if carried and carried >= threshold:
                apply(engine.note_volume(child.inbound_spi, carried, now))
