"""What the IKE engine reports that both agents log and count the same way: messages it
dropped (one event-level line naming peer, exchange, payload and reason, rate-limited per
peer and category, counted per category), requests stuck without an answer, and what a
peer announced that we only note (vendor IDs, unknown Mode-Config attributes: debug).

The engine is sans-I/O and only emits events; this is where they become log lines. Every
text passes through the event log's escaping, so wire strings in reasons are harmless.
"""

from __future__ import annotations

from collections import Counter

from ..ike import ModeConfig, PacketDropped, Phase1Established
from ..ike.errors import DROP_CATEGORIES
from ..ike.events import IkeFragments, RequestRetransmitted
from .eventlog import EventLog


def describe_drop(e: PacketDropped) -> str:
    """``dropped aggressive mode message from 1.2.3.4:500 (ATTR payload, offset 70):
    malformed: attribute header truncated``."""
    what = f"{e.exchange} message" if e.exchange else "message"
    where = [f"{e.payload} payload"] if e.payload else []
    if e.offset is not None:
        where.append(f"offset {e.offset}")
    detail = f" ({', '.join(where)})" if where else ""
    return f"dropped {what} from {e.peer[0]}:{e.peer[1]}{detail}: {e.category}: {e.reason}"


class IkeReport:
    """Logs and counts one agent's engine reports; ``drops`` survives engine changes (the
    client makes a new engine per connection)."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.drops: Counter[str] = Counter({c: 0 for c in DROP_CATEGORIES})
        self.stale = 0  # late messages for SAs removed a moment ago (not counted as drops)

    def dropped(self, e: PacketDropped) -> None:
        if e.stale:
            self.stale += 1
            self.log.debug("IKE/0", describe_drop(e), e.peer[0], limit="stale")
            return
        self.drops[e.category] += 1
        self.log.warning("IKE/0", describe_drop(e), e.peer[0], limit=f"drop {e.category}")

    def retransmitted(self, e: RequestRetransmitted) -> None:
        # Not rate-limited: a few per exchange, and only once phase 1 authenticated the peer.
        tries = "retransmit" if e.retransmits == 1 else "retransmits"
        self.log.warning(
            "IKE/100",
            f"waiting for {e.waiting_for} from {e.peer[0]}:{e.peer[1]} "
            f"({e.retransmits} {tries}, {e.waited:.0f} s)",
            e.peer[0],
        )

    def fragments(self, e: IkeFragments) -> None:
        """One line per fragmented message: what Cisco's client logs as "Sending/Received
        IKE fragment" (its lines per fragment would be too many)."""
        message = f"{e.exchange} message of {e.size} bytes"
        if e.sent:
            what = f"sent {message} as {e.fragments} IKE fragments to"
        else:
            what = f"reassembled {message} from {e.fragments} IKE fragments from"
        self.log.info("IKE/130", f"{what} {e.peer[0]}:{e.peer[1]}", e.peer[0])

    def peer_vendor(self, e: Phase1Established) -> None:
        self.log.debug("IKE/42", f"peer vendor IDs: {e.peer_vendor.describe()}", e.peer[0])

    def unknown_attributes(self, config: ModeConfig, peer: str) -> None:
        if config.unknown:
            names = ", ".join(str(a.type) for a in config.unknown)
            self.log.debug("IKE/43", f"Mode-Config attributes ignored (unknown): {names}", peer)

    def counts(self) -> dict[str, int]:
        return {**self.drops, "stale": self.stale}
