"""Kilobyte lifetimes: the engine sees no ESP, so the agent tells it what a child with a
volume limit has carried (the data plane's per-SA byte counters) -- only once that is near
enough the limit for the engine to act (a report below it changes nothing).

The data plane watches each such child and reports the batch that crosses its threshold
(``VolumeReached``): the rekeying end then starts its quick mode at once. A once-a-second
pass arms the watches again and repeats the report for a child still past its threshold
(a rekey that failed and is retried). With only that pass, the two ends reported out of
step: at a high rate the end that expires a child could see 100 % before the end that
rekeys saw 90 %."""

from __future__ import annotations

from collections.abc import Callable

from ..ike import Output
from ..ike.engine import EngineBase
from ..ike.exchanges.volume import report_threshold
from ..ike.sa import ChildSa
from .dataplane import Dataplane, VolumeReached


def report_volumes(
    engine: EngineBase, dataplane: Dataplane, apply: Callable[[Output], None], now: float
) -> None:
    """The once-a-second pass over every child."""
    for sa in list(engine.sas.values()):
        for child in list(sa.children.values()):
            _report_or_watch(engine, dataplane, apply, child, now)


def watch_child(engine: EngineBase, dataplane: Dataplane, inbound_spi: int) -> None:
    """Arm the data plane's watch for a child just installed (no report: it carried
    nothing yet)."""
    found = engine.child_for_spi(inbound_spi)
    threshold = report_threshold(engine, found[1]) if found is not None else None
    if found is not None and threshold is not None:
        dataplane.watch_volume(inbound_spi, found[1].outbound_spi, threshold)


def volume_reached(
    engine: EngineBase, apply: Callable[[Output], None], event: VolumeReached, now: float
) -> None:
    apply(engine.note_volume(event.spi, event.carried, now))


def _report_or_watch(
    engine: EngineBase,
    dataplane: Dataplane,
    apply: Callable[[Output], None],
    child: ChildSa,
    now: float,
) -> None:
    threshold = report_threshold(engine, child)
    if threshold is None:
        return
    carried = dataplane.carried(child.inbound_spi, child.outbound_spi)
    if carried is None:
        return
    if carried >= threshold:
        apply(engine.note_volume(child.inbound_spi, carried, now))
    else:
        dataplane.watch_volume(child.inbound_spi, child.outbound_spi, threshold)
