"""Cisco IKE fragmentation in the engine (the format and reassembly are in
:mod:`labctl.ike.fragments`): fragments received are reassembled before the message is
routed, as if it had come whole; a phase-1 message we send that is longer than the
configured size goes out as fragments when both ends announced fragmentation for that
exchange (main and aggressive mode: capability bit 0x80000000, as racoon reads it; charon
sends exactly that, Cisco c0000000)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..codec import decode_header
from ..constants import ExchangeType, exchange_name
from ..events import Collector, IkeFragments
from ..fragments import (
    CAP_AGGRESSIVE,
    CAP_MAIN_MODE,
    FRAGMENT_PAYLOAD,
    PHASE1_EXCHANGES,
    ReassemblyError,
    decode_fragment,
    split,
)
from ..sa import IkeSa
from ..states import Role

if TYPE_CHECKING:
    from ..engine import EngineBase
    from ..transitions import Inbound


_INITIATOR = Role.INITIATOR  # read per message sent (enum member reads are slow on 3.11)


def reassemble(engine: EngineBase, out: Collector, rx: Inbound) -> bool:
    """``rx`` is a fragment: add it; True (and ``rx`` now the whole message) when complete."""
    now = rx.now
    for (remote, *_), held in engine.fragments.expire(now):
        engine.stats["fragments_timed_out"] += 1
        engine._drop(
            out,
            remote,
            f"IKE fragment: message incomplete after {engine.fragments.timeout:.0f} s "
            f"({held} fragments held, dropped)",
            payload=FRAGMENT_PAYLOAD,
        )
    frag = decode_fragment(rx.data, rx.header)
    engine.stats["fragments_received"] += 1
    whole = engine.fragments.add(frag, rx.remote, now)
    if whole is None:
        return False
    header = decode_header(whole)
    if (header.icookie, header.exchange) != (rx.header.icookie, rx.header.exchange):
        raise ReassemblyError(0, "reassembled message is not of the fragments' SA or exchange")
    engine.stats["messages_reassembled"] += 1
    count = engine.fragments.completed_count
    name = exchange_name(header.exchange)
    out.event(IkeFragments(None, rx.remote, name, len(whole), count, False))
    rx.data, rx.header = whole, header
    return True


def fragment_size(engine: EngineBase) -> int | None:
    """The size above which we fragment (None: we never do)."""
    if engine.role is _INITIATOR:
        cfg = engine.config  # type: ignore[attr-defined]
        return cfg.fragment_size if cfg.vendor.fragmentation else None
    policy = engine.policy  # type: ignore[attr-defined]
    return policy.fragment_size if policy.vendor.fragmentation else None


def peer_takes(sa: IkeSa, exchange: int) -> bool:
    """Did the peer announce fragmentation for this exchange?  (A VID without capability
    flags, as Windows peers send it: taken as 0x80000000, main and aggressive mode.)"""
    vendor = sa.peer_vendor
    if not vendor.fragmentation:
        return False
    flags = vendor.fragmentation_flags or CAP_MAIN_MODE
    need = CAP_AGGRESSIVE if exchange == ExchangeType.AGGRESSIVE else CAP_MAIN_MODE
    return bool(flags & need)


def outbound(engine: EngineBase, out: Collector, sa: IkeSa, data: bytes) -> list[bytes]:
    """What to put on the wire for ``data``: itself, or its fragments."""
    size = fragment_size(engine)
    if size is None or len(data) <= size or sa.tcp:
        return [data]
    exchange = data[18]
    if exchange not in PHASE1_EXCHANGES or not peer_takes(sa, exchange):
        return [data]
    sa.fragment_id = (sa.fragment_id + 1) & 0xFFFF or 1
    pieces = split(data, size, sa.fragment_id)
    engine.stats["messages_fragmented"] += 1
    engine.stats["fragments_sent"] += len(pieces)
    out.event(
        IkeFragments(sa.handle, sa.remote, exchange_name(exchange), len(data), len(pieces), True)
    )
    return pieces
