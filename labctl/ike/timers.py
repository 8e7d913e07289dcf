"""The engine's timers, both roles: what falls due on an SA when time passes
(:meth:`EngineBase.tick` calls :func:`tick_sa` for each SA whose deadline came)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .events import Collector, ExchangeFailed, PeerDead, RequestRetransmitted
from .exchanges import informational, quick_mode
from .sa import IkeSa

if TYPE_CHECKING:
    from .engine import EngineBase


def tick_sa(engine: EngineBase, out: Collector, sa: IkeSa, now: float) -> None:
    """Whatever is due on one SA at ``now``: retransmissions (or giving up), the
    exchange deadline, quick modes waiting for HASH(3), child SAs to delete, expire or
    rekey, the SA's own expiry and rekey, DPD, the Altiga heartbeat."""
    for r in list(sa.retransmits.values()):
        if r.next_at > now:
            continue
        if r.left <= 0:
            sa.retransmits.pop(r.key, None)
            engine._retransmit_failed(out, sa, r, now)
            if sa.key not in engine.sas:
                return
            continue
        r.left -= 1
        r.interval = min(r.interval * 2, 32.0)
        r.next_at = now + r.interval
        engine.stats["retransmits"] += 1
        engine._send(out, sa, r.data)
        out.event(
            RequestRetransmitted(
                sa.handle,
                sa.remote,
                r.stage,
                r.waiting_for(engine.role),
                engine._retransmit_max - r.left,
                now - r.started,
            )
        )
    if sa.deadline_for_msg is not None and sa.deadline_for_msg <= now:
        sa.deadline_for_msg = None
        reason = sa.last_error or "peer stopped answering"
        engine._remove_sa(
            out,
            sa,
            f"timeout: {reason}",
            now,
            notify_peer=False,
            failed_stage="phase1" if not sa.established else "exchange",
        )
        return
    for mid, q in list(sa.quick.items()):
        if q.deadline is not None and q.deadline <= now:
            del sa.quick[mid]
            waited = now - q.started
            out.event(
                ExchangeFailed(
                    sa.handle, sa.remote, "quick", f"no quick mode HASH(3) in {waited:.0f} s"
                )
            )
            quick_mode.abandon(engine, sa, q)
    for child in list(sa.children.values()):
        if child.delete_at is not None and child.delete_at <= now:
            engine._remove_child(out, sa, child, "rekeyed", notify_peer=True)
        elif child.expires_at <= now:
            engine._remove_child(out, sa, child, "expired", notify_peer=True)
        elif child.rekey_at is not None and not child.rekeying and child.rekey_at <= now:
            engine._rekey_child(out, sa, child, now)
    if sa.expires_at is not None and sa.expires_at <= now:
        engine._remove_sa(out, sa, "expired", now, notify_peer=True)
        return
    if sa.rekey_at is not None and not sa.rekey_started and sa.rekey_at <= now:
        engine._rekey_phase1(out, sa, now)
    if sa.established and sa.dpd_idle is not None:
        if sa.dpd_pending is not None:
            if now >= sa.dpd_sent_at + sa.dpd_retry:
                if sa.dpd_tries >= engine._dpd_max():
                    out.event(PeerDead(sa.handle, sa.remote, sa.dpd_tries))
                    engine._remove_sa(out, sa, "dpd", now, notify_peer=False)
                    return
                informational.send_dpd(engine, out, sa, now)
        elif now >= sa.last_rx + sa.dpd_idle:
            informational.send_dpd(engine, out, sa, now)
    if sa.next_heartbeat is not None and sa.next_heartbeat <= now:
        engine._heartbeat(out, sa, now)
