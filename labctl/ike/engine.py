"""Machinery both roles share: output collection, timers, retransmission, informational
exchanges (notify, delete, DPD), child SA keying, expiry."""

from __future__ import annotations

import heapq
import itertools
import struct
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from .codec import (
    Attribute,
    DeletePayload,
    EncryptedMessage,
    HashPayload,
    Header,
    Message,
    NotifyPayload,
    decode_attributes,
)
from .constants import (
    ExchangeType,
    LifeType,
    NotifyType,
    P1Attr,
    P2Attr,
    PayloadType,
    ProtocolId,
    name_of,
)
from .crypto import ESP_INTEGRITY, esp_cipher, random_bytes
from .encapsulation import Encapsulation
from .errors import DropCategory, IkeDecodeError, IkeError, IkeProtocolError
from .events import (
    ChildSaDeleted,
    ChildSaEstablished,
    Datagram,
    Endpoint,
    Event,
    ExchangeFailed,
    NotifyReceived,
    Output,
    PacketDropped,
    PeerDead,
    Phase1Deleted,
    RequestRetransmitted,
    Waiting,
)
from .keys import keymat
from .proposals import lifetime_pairs
from .sa import ChildSa, IkeSa, Retransmit
from .states import Phase1State, Role

EXCHANGE_NAMES = {
    ExchangeType.MAIN: "main mode",
    ExchangeType.AGGRESSIVE: "aggressive mode",
    ExchangeType.INFORMATIONAL: "informational",
    ExchangeType.TRANSACTION: "transaction",
    ExchangeType.QUICK: "quick mode",
}
# How many removed SAs to remember, so late messages for them read as stale, not hostile.
RECENTLY_REMOVED = 256
# What an unanswered request waits for, by the key of its retransmission (prefix).
_WAITING_FOR = {
    "am1": "aggressive mode message 2",
    "am3": "XAUTH request (after aggressive mode message 3)",
    "mm1": "main mode message 2",
    "mm3": "main mode message 4",
    "mm5": "main mode message 6",
    "qm": "quick mode reply",
    "xauth": "XAUTH reply",
    "xauth-ok": "XAUTH acknowledgement",
    "xauth-fail": "XAUTH acknowledgement",
}


def responder_lifetime_seconds(n: NotifyPayload) -> int | None:
    """The lifetime in seconds a RESPONDER-LIFETIME notify announces (its data is phase-1
    or ESP life attributes by the notify's protocol), None when it carries none we can use:
    a notify we cannot read only means we keep our own lifetime."""
    if n.protocol == ProtocolId.ISAKMP:
        attrs = (P1Attr.LIFE_TYPE, P1Attr.LIFE_DURATION)
    else:
        attrs = (P2Attr.LIFE_TYPE, P2Attr.LIFE_DURATION)
    try:
        pairs = lifetime_pairs(decode_attributes(n.data), *attrs)
    except (IkeError, ValueError):
        return None
    seconds = [value for life_type, value in pairs if life_type == LifeType.SECONDS]
    return seconds[-1] if seconds else None


def exchange_name(exchange: int) -> str:
    return EXCHANGE_NAMES.get(exchange) or f"exchange {name_of(ExchangeType, exchange)}"


def payload_name(payload: int) -> str:
    return name_of(PayloadType, payload)


@dataclass
class Collector:
    """Accumulates one call's datagrams and events."""

    datagrams: list[Datagram] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def event(self, e: Event) -> None:
        self.events.append(e)


def random_message_id() -> int:
    while True:
        mid = int.from_bytes(random_bytes(4), "big")
        if mid:
            return mid


def random_cookie() -> bytes:
    while True:
        c = random_bytes(8)
        if c != bytes(8):
            return c


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

    # -- output and timers ---------------------------------------------------------------------

    def _finish(self, out: Collector) -> Output:
        return Output(tuple(out.datagrams), tuple(out.events), self.next_deadline())

    def _schedule(self, sa: IkeSa) -> None:
        if sa.key not in self.sas:
            return
        deadline = sa.next_deadline()
        if deadline is not None:
            heapq.heappush(self._heap, (deadline, next(self._seq), sa.key))
        if len(self._heap) > 4 * len(self.sas) + 64:
            self._rebuild_heap()

    def _rebuild_heap(self) -> None:
        self._heap = []
        for sa in self.sas.values():
            d = sa.next_deadline()
            if d is not None:
                self._heap.append((d, next(self._seq), sa.key))
        heapq.heapify(self._heap)

    def next_deadline(self) -> float | None:
        while self._heap:
            deadline, _, key = self._heap[0]
            sa = self.sas.get(key)
            if sa is not None and sa.next_deadline() == deadline:
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
        out.datagrams.append(
            Datagram(
                data,
                sa.remote,
                sa.local[1],
                non_esp_marker=marker,
                local_ip=sa.local[0],
                tcp=sa.tcp,
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

    def _waiting_for(self, key: str) -> str:
        """What the request with retransmission key ``key`` ("modecfg-1a2b3c4d") awaits."""
        prefix = key.rsplit("-", 1)[0] if "-" in key else key
        if prefix == "modecfg":  # a client's REQUEST, or a gateway's pushed SET
            return (
                "Mode-Config reply"
                if self.role is Role.INITIATOR
                else "Mode-Config acknowledgement"
            )
        return _WAITING_FOR.get(prefix, key)

    def waiting(self) -> list[Waiting]:
        """Every request still unanswered (oldest first): what a stuck exchange waits for."""
        pending = [
            Waiting(r.stage, self._waiting_for(r.key), self._retransmit_max - r.left, r.started)
            for sa in self.sas.values()
            for r in sa.retransmits.values()
        ]
        return sorted(pending, key=lambda w: w.since)

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
                payload_name(payload) if payload is not None else None,
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

    def _plain_informational(
        self, out: Collector, sa: IkeSa, msg: Message, remote: Endpoint
    ) -> None:
        """An unencrypted informational is unauthenticated: report it, never act on it."""
        for n in msg.find(NotifyPayload):
            out.event(NotifyReceived(sa.handle, n.notify_type, n.protocol, n.spi, n.data, False))
        self._drop(
            out,
            remote,
            "unencrypted informational: reported, not acted on",
            sa=sa,
            exchange=msg.exchange,
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

    # -- informational exchanges ---------------------------------------------------------------

    def _send_informational(self, out: Collector, sa: IkeSa, payloads: list) -> int:
        mid = random_message_id()
        self._send(out, sa, sa.protected(ExchangeType.INFORMATIONAL, mid, payloads))
        return mid

    def _cookie_spi(self, sa: IkeSa) -> bytes:
        return sa.icookie + sa.rcookie

    def _send_error_notify(self, out: Collector, sa: IkeSa, notify: int, spi: bytes = b""):
        if sa.keys is None or sa.p1_last == b"":
            return
        protocol = ProtocolId.ISAKMP if len(spi) != 4 else ProtocolId.ESP
        self._send_informational(out, sa, [NotifyPayload(notify, protocol, spi)])

    def _responder_lifetime_notify(self, sa: IkeSa) -> NotifyPayload:
        data = (
            Attribute(P1Attr.LIFE_TYPE, LifeType.SECONDS).encode()
            + Attribute.number(P1Attr.LIFE_DURATION, sa.lifetime).encode()
        )
        return NotifyPayload(
            NotifyType.RESPONDER_LIFETIME, ProtocolId.ISAKMP, self._cookie_spi(sa), data
        )

    def _receive_informational(
        self, out: Collector, sa: IkeSa, enc: EncryptedMessage, now: float, authenticated=None
    ) -> None:
        """``authenticated`` runs once the message proved genuine, before any answer is sent
        (the responder moves to the sender's address there)."""
        msg, _ = sa.decrypt(enc)
        sa.check_hash(msg, allow_empty=True)
        if msg.message_id in sa.done_msgids:
            raise IkeProtocolError(f"replayed informational M-ID {msg.message_id:08x}")
        sa.mark_done(msg.message_id)
        self._note_alive(sa, now)
        if authenticated is not None:
            authenticated()
        for p in msg.payloads[1:]:
            if isinstance(p, NotifyPayload):
                self._on_notify(out, sa, p, now)
            elif isinstance(p, DeletePayload):
                self._on_delete(out, sa, p, now)

    def _note_alive(self, sa: IkeSa, now: float) -> None:
        sa.last_rx = now

    def _on_notify(self, out: Collector, sa: IkeSa, n: NotifyPayload, now: float) -> None:
        if n.notify_type == NotifyType.DPD_R_U_THERE:
            if len(n.data) == 4:
                ack = NotifyPayload(
                    NotifyType.DPD_R_U_THERE_ACK, ProtocolId.ISAKMP, self._cookie_spi(sa), n.data
                )
                self._send_informational(out, sa, [ack])
                self.stats["dpd_acked"] += 1
            return
        if n.notify_type == NotifyType.DPD_R_U_THERE_ACK:
            if len(n.data) == 4 and sa.dpd_pending == struct.unpack("!I", n.data)[0]:
                sa.dpd_pending = None
                sa.dpd_tries = 0
            return
        if n.notify_type == NotifyType.ALTIGA_KEEPALIVE:
            self.stats["altiga_keepalive"] += 1
            return
        if n.notify_type == NotifyType.RESPONDER_LIFETIME:
            self._on_responder_lifetime(sa, n, now)
            return
        if n.notify_type == NotifyType.INITIAL_CONTACT:
            return
        out.event(NotifyReceived(sa.handle, n.notify_type, n.protocol, n.spi, n.data, True))

    def _on_responder_lifetime(self, sa: IkeSa, n: NotifyPayload, now: float) -> None:
        """Initiator side: shorten lifetimes as the responder asks."""
        seconds = responder_lifetime_seconds(n)
        if not seconds:
            return
        if n.protocol == ProtocolId.ISAKMP and sa.established_at is not None:
            if seconds < sa.lifetime:
                sa.lifetime = seconds
                sa.expires_at = sa.established_at + seconds
                self._set_rekey(sa)
        elif n.protocol == ProtocolId.ESP and len(n.spi) == 4:
            spi = int.from_bytes(n.spi, "big")
            for child in sa.children.values():
                if spi in (child.inbound_spi, child.outbound_spi) and seconds < child.lifetime:
                    child.lifetime = seconds
                    child.expires_at = child.established + seconds
                    self._set_child_rekey(child)

    def _set_rekey(self, sa: IkeSa) -> None:
        """Initiator decides; the responder leaves rekeying to its peer."""

    def _set_child_rekey(self, child: ChildSa) -> None:
        """Initiator decides; the responder leaves rekeying to its peer."""

    def _on_delete(self, out: Collector, sa: IkeSa, d: DeletePayload, now: float) -> None:
        if d.protocol == ProtocolId.ISAKMP:
            for spi in d.spis:
                if len(spi) != 16:
                    continue
                target = self.sas.get((spi[:8], spi[8:]))
                if target is None or not self._may_delete(sa, target):
                    continue
                self._remove_sa(out, target, "peer-delete", now, notify_peer=False)
            return
        if d.protocol != ProtocolId.ESP:
            return
        for spi in d.spis:
            if len(spi) != 4:
                continue
            value = int.from_bytes(spi, "big")
            for child in list(sa.children.values()):
                if value in (child.inbound_spi, child.outbound_spi):
                    self._remove_child(out, sa, child, "peer-delete", notify_peer=False)

    def _may_delete(self, carrier: IkeSa, target: IkeSa) -> bool:
        """An ISAKMP Delete may name another SA (vpnc deletes the pre-rekey one); only the
        same peer's SAs may be deleted that way."""
        if carrier is target:
            return True
        return (
            carrier.remote[0] == target.remote[0]
            and carrier.group_name == target.group_name
            and carrier.user == target.user
        )

    # -- dead peer detection -------------------------------------------------------------------

    def _send_dpd(self, out: Collector, sa: IkeSa, now: float) -> None:
        if sa.dpd_pending is None:
            sa.dpd_seq = (sa.dpd_seq + 1) & 0x7FFFFFFF or 1
            sa.dpd_pending = sa.dpd_seq
            sa.dpd_tries = 0
        sa.dpd_tries += 1
        sa.dpd_sent_at = now
        n = NotifyPayload(
            NotifyType.DPD_R_U_THERE,
            ProtocolId.ISAKMP,
            self._cookie_spi(sa),
            struct.pack("!I", sa.dpd_pending),
        )
        self._send_informational(out, sa, [n])
        self.stats["dpd_sent"] += 1

    def _dpd_max(self) -> int:
        raise NotImplementedError

    # -- child SAs -----------------------------------------------------------------------------

    def new_spi(self) -> bytes:
        """A fresh inbound SPI, unique in this engine and never in the reserved 1..255."""
        while True:
            raw = random_bytes(4)
            value = int.from_bytes(raw, "big")
            if value > 0xFF and value not in self.inbound_spis:
                return raw

    def _make_child(
        self,
        sa: IkeSa,
        *,
        message_id: int,
        my_spi: bytes,
        peer_spi: bytes,
        offer,
        policy,
        ni_b: bytes,
        nr_b: bytes,
        gqm: bytes | None,
        local_ts,
        remote_ts,
        lifetime: int,
        now: float,
    ) -> ChildSa:
        assert sa.keys is not None
        cipher = esp_cipher(offer.transform, offer.key_bits)
        integ = ESP_INTEGRITY[offer.auth]
        need = cipher.key_len + integ.key_len
        k_in = keymat(sa.hash_id, sa.keys.skeyid_d, ProtocolId.ESP, my_spi, ni_b, nr_b, need, gqm)
        k_out = keymat(
            sa.hash_id, sa.keys.skeyid_d, ProtocolId.ESP, peer_spi, ni_b, nr_b, need, gqm
        )
        encap = Encapsulation.negotiated(
            offer.encapsulation, tcp=sa.tcp, cisco_udp=sa.cisco_udp_port is not None
        )
        return ChildSa(
            inbound_spi=int.from_bytes(my_spi, "big"),
            outbound_spi=int.from_bytes(peer_spi, "big"),
            message_id=message_id,
            encryption=cipher.name,
            integrity=integ.name,
            encapsulation=encap,
            local_ts=local_ts,
            remote_ts=remote_ts,
            lifetime=lifetime,
            lifetime_kb=offer.life_kilobytes,
            established=now,
            expires_at=now + lifetime,
            rekey_at=None,
            pfs_group=offer.pfs_group,
            proposal=policy,
            enc_key_in=k_in[: cipher.key_len],
            auth_key_in=k_in[cipher.key_len :],
            enc_key_out=k_out[: cipher.key_len],
            auth_key_out=k_out[cipher.key_len :],
        )

    def _child_event(self, sa: IkeSa, child: ChildSa, rekey_of: int | None) -> ChildSaEstablished:
        if child.encapsulation is Encapsulation.CISCO_UDP:
            udp_port, local_port = sa.cisco_udp_port, sa.cisco_udp_port
        elif child.encapsulation is not Encapsulation.TUNNEL:  # NAT-T or the TCP connection
            udp_port, local_port = sa.remote[1], sa.local[1]
        else:
            udp_port = local_port = None
        return ChildSaEstablished(
            handle=sa.handle,
            message_id=child.message_id,
            inbound_spi=child.inbound_spi,
            outbound_spi=child.outbound_spi,
            encryption=child.encryption,
            integrity=child.integrity,
            encapsulation=child.encapsulation,
            udp_port=udp_port,
            local_port=local_port,
            local_ts=child.local_ts,
            remote_ts=child.remote_ts,
            lifetime_seconds=child.lifetime,
            lifetime_kilobytes=child.lifetime_kb,
            peer=sa.remote,
            local=sa.local,
            pfs_group=child.pfs_group,
            rekey_of=rekey_of,
            user=sa.user,
            enc_key_in=child.enc_key_in,
            auth_key_in=child.auth_key_in,
            enc_key_out=child.enc_key_out,
            auth_key_out=child.auth_key_out,
        )

    def _install_child(self, out: Collector, sa: IkeSa, child: ChildSa, rekey_of: int | None):
        sa.children[child.inbound_spi] = child
        self.inbound_spis[child.inbound_spi] = sa
        out.event(self._child_event(sa, child, rekey_of))

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
            d = DeletePayload(ProtocolId.ISAKMP, (self._cookie_spi(sa),), 16)
            self._send_informational(out, sa, [d])
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
        for r in list(sa.retransmits.values()):
            if r.next_at > now:
                continue
            if r.left <= 0:
                sa.retransmits.pop(r.key, None)
                self._retransmit_failed(out, sa, r, now)
                if sa.key not in self.sas:
                    return
                continue
            r.left -= 1
            r.interval = min(r.interval * 2, 32.0)
            r.next_at = now + r.interval
            self.stats["retransmits"] += 1
            self._send(out, sa, r.data)
            out.event(
                RequestRetransmitted(
                    sa.handle,
                    sa.remote,
                    r.stage,
                    self._waiting_for(r.key),
                    self._retransmit_max - r.left,
                    now - r.started,
                )
            )
        if sa.deadline_for_msg is not None and sa.deadline_for_msg <= now:
            sa.deadline_for_msg = None
            reason = sa.last_error or "peer stopped answering"
            self._remove_sa(
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
                self._quick_timed_out(out, sa, q, now)
        for child in list(sa.children.values()):
            if child.delete_at is not None and child.delete_at <= now:
                self._remove_child(out, sa, child, "rekeyed", notify_peer=True)
            elif child.expires_at <= now:
                self._remove_child(out, sa, child, "expired", notify_peer=True)
            elif child.rekey_at is not None and not child.rekeying and child.rekey_at <= now:
                self._rekey_child(out, sa, child, now)
        if sa.expires_at is not None and sa.expires_at <= now:
            self._remove_sa(out, sa, "expired", now, notify_peer=True)
            return
        if sa.rekey_at is not None and not sa.rekey_started and sa.rekey_at <= now:
            self._rekey_phase1(out, sa, now)
        if sa.established and sa.dpd_idle is not None:
            if sa.dpd_pending is not None:
                if now >= sa.dpd_sent_at + sa.dpd_retry:
                    if sa.dpd_tries >= self._dpd_max():
                        out.event(PeerDead(sa.handle, sa.remote, sa.dpd_tries))
                        self._remove_sa(out, sa, "dpd", now, notify_peer=False)
                        return
                    self._send_dpd(out, sa, now)
            elif now >= sa.last_rx + sa.dpd_idle:
                self._send_dpd(out, sa, now)
        if sa.next_heartbeat is not None and sa.next_heartbeat <= now:
            self._heartbeat(out, sa, now)

    def _retransmit_failed(self, out: Collector, sa: IkeSa, r: Retransmit, now: float) -> None:
        self._remove_sa(
            out, sa, self._unanswered(r, now), now, notify_peer=False, failed_stage=r.stage
        )

    def _unanswered(self, r: Retransmit, now: float) -> str:
        """Why an exchange gave up: "no Mode-Config reply after 5 retransmits (62 s)"."""
        sent = self._retransmit_max - r.left
        return f"no {self._waiting_for(r.key)} after {sent} retransmits ({now - r.started:.0f} s)"

    def _quick_timed_out(self, out: Collector, sa: IkeSa, q, now: float) -> None:
        """Role hook."""

    def _rekey_child(self, out: Collector, sa: IkeSa, child: ChildSa, now: float) -> None:
        child.rekeying = True

    def _rekey_phase1(self, out: Collector, sa: IkeSa, now: float) -> None:
        sa.rekey_started = True

    def _heartbeat(self, out: Collector, sa: IkeSa, now: float) -> None:
        sa.next_heartbeat = None

    # -- snapshots -----------------------------------------------------------------------------

    def sessions(self) -> list:
        """SessionInfo snapshots of every established phase-1 SA."""
        from .events import ChildInfo, SessionInfo
        from .phase1 import algorithms, nat_status

        out = []
        for sa in self.sas.values():
            if not sa.established:
                continue
            children = tuple(
                ChildInfo(
                    c.inbound_spi,
                    c.outbound_spi,
                    c.encryption,
                    c.integrity,
                    c.encapsulation,
                    c.local_ts,
                    c.remote_ts,
                    c.established,
                    c.expires_at,
                )
                for c in sa.children.values()
            )
            address = None
            if sa.mode_config is not None and sa.mode_config.address is not None:
                address = str(sa.mode_config.address)
            out.append(
                SessionInfo(
                    handle=sa.handle,
                    role=sa.role,
                    mode=sa.mode,
                    group=sa.group_name,
                    user=sa.user,
                    peer=sa.remote,
                    local=sa.local,
                    algorithms=algorithms(sa),
                    nat=nat_status(sa),
                    xauth=sa.xauth,
                    address=address,
                    peer_app_version=sa.peer_app_version,
                    established_at=sa.established_at,
                    expires_at=sa.expires_at,
                    children=children,
                    replaced_by=sa.replaced_by,
                )
            )
        return out

    # -- small helpers -------------------------------------------------------------------------

    @staticmethod
    def _payload_index(msg: Message, cls: type) -> int | None:
        for i, p in enumerate(msg.payloads):
            if isinstance(p, cls):
                return i
        return None

    @staticmethod
    def _hash_payload(msg: Message) -> HashPayload | None:
        return msg.first(HashPayload)
