"""Kilobyte lifetimes (RFC 2407 4.5: SA Life Type 2): an ESP SA pair may carry so many
kilobytes each way.  The engine sees no ESP, so the agent reports what each child's SAs
carried (``EngineBase.note_volume``); the end that rekeys starts a quick mode once
``margin`` of the volume is left (or at once, when a report jumps past the limit), and an
end that does not rekey deletes a child whose volume is used up."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..events import Collector
from ..sa import ChildSa, IkeSa
from . import qm_policy

if TYPE_CHECKING:
    from ..engine import EngineBase


def report_threshold(engine: EngineBase, child: ChildSa) -> int | None:
    """Bytes below which a report on ``child`` changes nothing (None: no report ever
    does), so the agent's once-a-second reports can skip the engine until then."""
    if child.lifetime_kb is None or child.delete_at is not None:
        return None
    limit = child.lifetime_kb * 1024
    if qm_policy.rekeys(engine):
        return int(limit * (1 - qm_policy.margin(engine)))
    return limit


def check(
    engine: EngineBase, out: Collector, sa: IkeSa, child: ChildSa, carried: int, now: float
) -> None:
    """``carried``: bytes the busier direction of ``child`` has protected so far."""
    if child.lifetime_kb is None or child.delete_at is not None:
        return
    limit = child.lifetime_kb * 1024
    rekeys = qm_policy.rekeys(engine) and sa.established
    if carried >= limit * (1 - qm_policy.margin(engine)) and rekeys and not child.rekeying:
        # also when a report jumps past the limit (bytes are counted once a second): the
        # successor takes over, the old pair goes after its grace
        engine.stats["child_volume_rekeys"] += 1
        engine._rekey_child(out, sa, child, now)
    elif carried >= limit and not rekeys:
        engine.stats["child_volume_expired"] += 1
        engine._remove_child(out, sa, child, "expired", notify_peer=True)
