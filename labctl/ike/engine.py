"""The engine both roles share: ``receive`` (one preamble: decode the header, find the SA,
check its transport, answer retransmissions from the cache, then the transition table of
:mod:`labctl.ike.transitions`), timers (retransmission, DPD, rekey, expiry), output
collection, drop reporting, and the bookkeeping of SAs and their children.

The exchanges themselves live in :mod:`labctl.ike.exchanges`; :class:`Initiator` and
:class:`Responder` add their policy, hooks and public API.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, OrderedDict

from . import timers
from .codec import DeletePayload, Header, decode_header, decode_message
from .constants import ExchangeType, PayloadType, ProtocolId, exchange_name, name_of
from .crypto import random_bytes
from .errors import DropCategory, IkeDecodeError, IkeError
from .events import (
    ChildSaDeleted,
    Collector,
    Datagram,
    Endpoint,
    ExchangeFailed,
    Output,
    PacketDropped,
    Phase1Deleted,
    SessionInfo,
    Waiting,
)
from .exchanges import children, fragmentation, informational, qm_policy, quick_mode, volume
from .exchanges.phase1 import session_info
from .fragments import FRAGMENT_PAYLOAD, Reassembler
from .records import frozen
from .sa import ChildSa, IkeSa, Retransmit, random_cookie, random_message_id
from .states import Phase1State, Role
from .transitions import Inbound, dispatch

__all__ = ["Collector", "EngineBase", "random_cookie", "random_message_id"]

# How many removed SAs to remember, so late messages for them read as stale, not hostile.
RECENTLY_REMOVED = 256


class EngineBase:
    """State and helpers common to :class:`Responder` and :class:`Initiator`."""

    role: Role

    def __init__(self, retransmit_interval: float, retransmit_max: int) -> None:
        self.sas: dict[tuple[bytes, bytes], IkeSa] = {}
        self.inbound_spis: dict[int, IkeSa] = {}
        self.stats: Counter[str] = Counter()
        self._heap: list[tuple[float, int, tuple[bytes, bytes]]] = []
        self._seq = itertools.count()
        self._retransmit_interval = retransmit_interval
        self._retransmit_max = retransmit_max
        self._recently_removed: OrderedDict[tuple[bytes, bytes], None] = OrderedDict()
        self.fragments = Reassembler()  # Cisco IKE fragments being put together

    # -- receiving -----------------------------------------------------------------------------

    def receive(
        self, data: bytes, remote: Endpoint, local: Endpoint, now: float, *, tcp: bool = False
    ) -> Output:
        """Feed one IKE message (non-ESP marker already stripped); ``tcp``: it came on the
        IPsec-over-TCP connection from ``remote`` (replies carry ``Datagram.tcp``)."""
        out = Collector()
        rx = Inbound(bytes(data), remote, local, now, tcp)
        self.stats["received"] += 1
        try:
            rx.header = decode_header(rx.data)
            if rx.header.next_payload != FRAGMENT_PAYLOAD or fragmentation.reassemble(
                self, out, rx
            ):
                self._route(out, rx)
        except IkeError as exc:
            self._handle_error(out, remote, exc, rx.sa, rx.header)
        if rx.sa is not None:
            self._after_receive(rx.sa)
        return self._finish(out)

    def _route(self, out: Collector, rx: Inbound) -> None:
        """Role: find the SA ``rx`` belongs to (set ``rx.sa``) and hand it on."""
        raise NotImplementedError

    def _receive_for(self, out: Collector, sa: IkeSa, rx: Inbound) -> None:
        """A message for an SA we hold: on its transport, not answered before -> the table."""
        if not self._on_its_transport(sa, rx):
            self._wrong_transport(out, rx.remote, sa, rx.header)
        elif rx.data in sa.reply_cache:
            self._answer_again(out, sa, rx.data)
        else:
            self._dispatch(out, sa, decode_message(rx.data, rx.header), rx)

    def _dispatch(self, out: Collector, sa: IkeSa | None, msg, rx: Inbound) -> IkeSa | None:
        return dispatch(self, out, sa, msg, rx)

    def _on_its_transport(self, sa: IkeSa, rx: Inbound) -> bool:
        """IPsec over TCP: an SA's messages come on its connection, nowhere else."""
        return sa.tcp == rx.tcp

    def _after_receive(self, sa: IkeSa) -> None:
        self._schedule(sa)

    def _authenticated(self, out: Collector, sa: IkeSa, rx: Inbound) -> None:
        """Role hook: a message of ``sa`` proved genuine (before anything is answered)."""

    def _interpret_delete(self, sa: IkeSa, d: DeletePayload, now: float) -> DeletePayload:
        """Role hook: read a peer's Delete (the responder knows a vpnc quirk)."""
        return d

    # -- output and timers ---------------------------------------------------------------------

    def _finish(self, out: Collector) -> Output:
        return frozen(
            Output,
            {
                "datagrams": tuple(out.datagrams),
                "events": tuple(out.events),
                "next_deadline": self.next_deadline(),
            },
        )

    def _schedule(self, sa: IkeSa) -> None:
        if sa.key not in self.sas:
            return
        deadline = sa.scheduled = sa.next_deadline()
        if deadline is not None:
            heapq.heappush(self._heap, (deadline, next(self._seq), sa.key))
        if len(self._heap) > 4 * len(self.sas) + 64:
            self._rebuild_heap()

    def _rebuild_heap(self) -> None:
        self._heap = []
        for sa in self.sas.values():
            d = sa.scheduled = sa.next_deadline()
            if d is not None:
                self._heap.append((d, next(self._seq), sa.key))
        heapq.heapify(self._heap)

    def next_deadline(self) -> float | None:
        while self._heap:
            deadline, _, key = self._heap[0]
            sa = self.sas.get(key)
            # the entry is current if it is what the SA was last scheduled for (every change
            # to an SA's timers is followed by _schedule): no recomputation per message
            if sa is not None and sa.scheduled == deadline:
                return deadline
            heapq.heappop(self._heap)
        return None

    def tick(self, now: float) -> Output:
        """Run every timer that is due: retransmissions, DPD, rekeys, expiries."""
        out = Collector()
        due: list[IkeSa] = []
        seen: set[tuple[bytes, bytes]] = set()
        while self._heap and self._heap[0][0] <= now:
            _, _, key = heapq.heappop(self._heap)
            sa = self.sas.get(key)
            if sa is None or key in seen:
                continue
            d = sa.next_deadline()
            if d is not None and d <= now:
                seen.add(key)
                due.append(sa)
            elif d is not None:
                sa.scheduled = d
                heapq.heappush(self._heap, (d, next(self._seq), key))  # keep it scheduled
        for sa in due:
            if sa.key in self.sas:
                self._tick_sa(out, sa, now)
                self._schedule(sa)
        return self._finish(out)

    # -- sending -------------------------------------------------------------------------------

    def _natt_port(self) -> int:
        raise NotImplementedError

    def _send(self, out: Collector, sa: IkeSa, data: bytes) -> None:
        # IKE on the NAT-T port always carries the non-ESP marker (RFC 3948 section 2.2);
        # on TCP the stream framing brings its own.
        marker = sa.local[1] == self._natt_port() and not sa.tcp
        for piece in fragmentation.outbound(self, out, sa, data):
            out.datagrams.append(
                frozen(
                    Datagram,
                    {
                        "data": piece,
                        "remote": sa.remote,
                        "local_port": sa.local[1],
                        "non_esp_marker": marker,
                        "local_ip": sa.local[0],
                        "tcp": sa.tcp,
                    },
                )
            )

    def _request(
        self, out: Collector, sa: IkeSa, key: str, data: bytes, stage: str, now: float
    ) -> None:
        """Send a request and keep resending it (with back-off) until answered."""
        sa.retransmits[key] = Retransmit(
            key,
            data,
            now + self._retransmit_interval,
            self._retransmit_interval,
            self._retransmit_max,
            stage,
            now,
        )
        self._send(out, sa, data)

    def _answered(self, sa: IkeSa, key: str) -> None:
        sa.retransmits.pop(key, None)

    def waiting(self) -> list[Waiting]:
        """Every request still unanswered (oldest first): what a stuck exchange waits for."""
        pending = [
            Waiting(r.stage, r.waiting_for(self.role), self._retransmit_max - r.left, r.started)
            for sa in self.sas.values()
            for r in sa.retransmits.values()
        ]
        return sorted(pending, key=lambda w: w.since)

    def _send_informational(self, out: Collector, sa: IkeSa, payloads: list) -> int:
        mid = random_message_id()
        self._send(out, sa, sa.protected(ExchangeType.INFORMATIONAL, mid, payloads))
        return mid

    def _drop(
        self,
        out: Collector,
        remote: Endpoint,
        reason: str,
        *,
        category: DropCategory = DropCategory.UNEXPECTED,
        offset: int | None = None,
        sa: IkeSa | None = None,
        exchange: int | None = None,
        payload: int | None = None,
        stale: bool = False,
    ) -> None:
        self.stats["dropped"] += 1
        self.stats[f"dropped_{category}"] += 1
        out.event(
            PacketDropped(
                remote,
                reason,
                offset,
                sa.handle if sa else None,
                category,
                exchange_name(exchange) if exchange is not None else None,
                name_of(PayloadType, payload) if payload is not None else None,
                stale,
            )
        )

    def _handle_error(
        self,
        out: Collector,
        remote: Endpoint,
        exc: IkeError,
        sa: IkeSa | None,
        header: Header | None = None,
    ):
        payload = getattr(exc, "payload", None)
        if isinstance(exc, IkeDecodeError):
            self.stats["malformed"] += 1
            offset: int | None = exc.offset
        else:
            self.stats["rejected"] += 1
            offset = None
        reason = getattr(exc, "reason", str(exc))
        self._drop(
            out,
            remote,
            reason,
            category=exc.category,
            offset=offset,
            sa=sa,
            exchange=header.exchange if header is not None else None,
            payload=payload,
        )

    def _unknown_sa(self, out: Collector, remote: Endpoint, header: Header) -> None:
        """A message for no SA we hold: stale if we removed that SA a moment ago."""
        stale = (header.icookie, header.rcookie) in self._recently_removed or (
            header.icookie,
            bytes(8),
        ) in self._recently_removed
        self.stats["unknown_cookies"] += 1
        reason = "SA removed a moment ago" if stale else "unknown cookies"
        self._drop(out, remote, reason, exchange=header.exchange, stale=stale)

    def _wrong_transport(self, out: Collector, remote: Endpoint, sa: IkeSa, header: Header):
        """IPsec over TCP: an SA's messages come on its connection, nowhere else."""
        self.stats["wrong_transport"] += 1
        self._drop(
            out,
            remote,
            "message of an SA on another transport",
            sa=sa,
            exchange=header.exchange,
        )

    def _answer_again(self, out: Collector, sa: IkeSa, data: bytes) -> None:
        """A message answered before (a retransmission): the same answer, nothing else."""
        self.stats["duplicates"] += 1
        for reply in sa.reply_cache[data]:
            self._send(out, sa, reply)

    def _remember_removed(self, key: tuple[bytes, bytes]) -> None:
        self._recently_removed[key] = None
        while len(self._recently_removed) > RECENTLY_REMOVED:
            self._recently_removed.popitem(last=False)

    # -- child SAs -----------------------------------------------------------------------------

    def child_for_spi(self, inbound_spi: int) -> tuple[IkeSa, ChildSa] | None:
        """The child SA whose inbound SPI this is, with its IKE SA."""
        sa = self.inbound_spis.get(inbound_spi)
        child = sa.children.get(inbound_spi) if sa is not None else None
        return (sa, child) if sa is not None and child is not None else None

    def note_volume(self, inbound_spi: int, carried: int, now: float) -> Output:
        """The agent's report: the child with ``inbound_spi`` has protected ``carried``
        bytes (its busier direction).  A kilobyte lifetime near its end starts a rekey (by
        the role's policy); one used up deletes the child."""
        out = Collector()
        found = self.child_for_spi(inbound_spi)
        if found is not None:
            sa, child = found
            volume.check(self, out, sa, child, carried, now)
            self._schedule(sa)
        return self._finish(out)

    def new_spi(self) -> bytes:
        """A fresh inbound SPI, unique in this engine and never in the reserved 1..255."""
        while True:
            raw = random_bytes(4)
            value = int.from_bytes(raw, "big")
            if value > 0xFF and value not in self.inbound_spis:
                return raw

    def _install_child(
        self,
        out: Collector,
        sa: IkeSa,
        child: ChildSa,
        rekey_of: int | None,
        *,
        started_by_peer: bool = False,
    ):
        sa.children[child.inbound_spi] = child
        self.inbound_spis[child.inbound_spi] = sa
        out.event(children.child_event(sa, child, rekey_of, started_by_peer=started_by_peer))

    def _remove_child(
        self, out: Collector, sa: IkeSa, child: ChildSa, reason: str, *, notify_peer: bool
    ) -> None:
        if sa.children.pop(child.inbound_spi, None) is None:
            return
        self.inbound_spis.pop(child.inbound_spi, None)
        if notify_peer and sa.established and sa.keys is not None:
            d = DeletePayload(ProtocolId.ESP, (child.inbound_spi.to_bytes(4, "big"),), 4)
            self._send_informational(out, sa, [d])
        out.event(ChildSaDeleted(sa.handle, child.inbound_spi, child.outbound_spi, reason))

    # -- phase-1 removal -----------------------------------------------------------------------

    def _remove_sa(
        self,
        out: Collector,
        sa: IkeSa,
        reason: str,
        now: float,
        *,
        notify_peer: bool,
        failed_stage: str | None = None,
    ) -> None:
        """Forget a phase-1 SA.  Its children move to the SA that replaced it, if any;
        otherwise they go too."""
        if sa.key not in self.sas:
            return
        self._on_removing(out, sa, reason)
        successor = (
            self.sas.get((sa.replaced_by.icookie, sa.replaced_by.rcookie))
            if sa.replaced_by
            else None
        )
        if successor is not None and successor.established:
            for child in list(sa.children.values()):
                sa.children.pop(child.inbound_spi)
                successor.children[child.inbound_spi] = child
                self.inbound_spis[child.inbound_spi] = successor
            self._schedule(successor)
        else:
            for child in list(sa.children.values()):
                self._remove_child(out, sa, child, "phase1-gone", notify_peer=notify_peer)
        if notify_peer and sa.established and sa.keys is not None:
            informational.send_isakmp_delete(self, out, sa, sa)
        was_established = sa.established
        sa.state = Phase1State.DELETED
        sa.retransmits.clear()
        del self.sas[sa.key]
        self._remember_removed(sa.key)
        self._forget(sa)
        if failed_stage is not None:
            out.event(ExchangeFailed(sa.handle, sa.remote, failed_stage, reason))
        if was_established or failed_stage is None:
            out.event(Phase1Deleted(sa.handle, reason, sa.user, sa.replaced_by))
        self._released(out, sa, successor)

    def _on_removing(self, out: Collector, sa: IkeSa, reason: str) -> None:
        """Role-specific reporting just before an SA goes."""

    def _forget(self, sa: IkeSa) -> None:
        """Role-specific index cleanup."""

    def _released(self, out: Collector, sa: IkeSa, successor: IkeSa | None) -> None:
        """Role-specific follow-up after an SA is gone (address release...)."""

    # -- timers --------------------------------------------------------------------------------

    def _tick_sa(self, out: Collector, sa: IkeSa, now: float) -> None:
        timers.tick_sa(self, out, sa, now)

    def _retransmit_failed(self, out: Collector, sa: IkeSa, r: Retransmit, now: float) -> None:
        if r.stage == "quick":  # only that quick mode fails, either role
            quick_mode.unanswered(self, out, sa, r)
            return
        self._remove_sa(
            out, sa, self._unanswered(r, now), now, notify_peer=False, failed_stage=r.stage
        )

    def _unanswered(self, r: Retransmit, now: float) -> str:
        """Why an exchange gave up: "no Mode-Config reply after 5 retransmits (62 s)"."""
        sent = self._retransmit_max - r.left
        return f"no {r.waiting_for(self.role)} after {sent} retransmits ({now - r.started:.0f} s)"

    def _dpd_max(self) -> int:
        raise NotImplementedError

    def _set_rekey(self, sa: IkeSa) -> None:
        """Initiator decides; the responder leaves rekeying to its peer."""

    def _set_child_rekey(self, child: ChildSa) -> None:
        """When this end starts phase-2 rekeys (the client's auto_rekey, the gateway's
        initiate_rekeys) and how early: the role's policy (qm_policy) says."""
        if qm_policy.rekeys(self):
            child.rekey_at = child.established + child.lifetime * (1 - qm_policy.margin(self))

    def _rekey_child(self, out: Collector, sa: IkeSa, child: ChildSa, now: float) -> None:
        child.rekeying = True

    def _rekey_phase1(self, out: Collector, sa: IkeSa, now: float) -> None:
        sa.rekey_started = True

    def _heartbeat(self, out: Collector, sa: IkeSa, now: float) -> None:
        sa.next_heartbeat = None

    # -- snapshots -----------------------------------------------------------------------------

    def sessions(self) -> list[SessionInfo]:
        """SessionInfo snapshots of every established phase-1 SA."""
        return [session_info(sa) for sa in self.sas.values() if sa.established]
