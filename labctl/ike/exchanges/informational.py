"""The informational exchange (RFC 2408 section 4.8), both roles: notifies, deletes, dead
peer detection (RFC 3706 R-U-THERE / ACK), Cisco's heartbeat, RESPONDER-LIFETIME, and the
unauthenticated notifies around phase 1 (a refused first message; a gateway's refusal of
ours; plain informationals, which are reported and never acted on).

An authenticated informational never changes the IV chains and is accepted at most once
per message ID.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from ..attributes import Attribute, decode_attributes
from ..codec import DeletePayload, EncryptedMessage, Message, NotifyPayload
from ..constants import (
    ISAKMP_SPI_LEN,
    ExchangeType,
    LifeType,
    NotifyType,
    P1Attr,
    P2Attr,
    ProtocolId,
    name_of,
)
from ..errors import IkeError, IkeProtocolError
from ..events import Collector, Datagram, ExchangeFailed, NotifyReceived
from ..proposals import lifetime_pairs
from ..sa import ChildSa, IkeSa, random_message_id
from ..states import Role
from . import quick_mode

if TYPE_CHECKING:
    from ..engine import EngineBase
    from ..initiator import Initiator
    from ..responder import Responder
    from ..transitions import Inbound

# Notifies this module consumes itself; every other one is reported (NotifyReceived).
_QUICK_REFUSALS = (NotifyType.NO_PROPOSAL_CHOSEN, NotifyType.INVALID_ID_INFORMATION)
# A gateway's answer to a phase-1 authentication it refused (certificate, signature, group)
_AUTH_REFUSALS = (
    NotifyType.AUTHENTICATION_FAILED,
    NotifyType.INVALID_CERT_AUTHORITY,
    NotifyType.INVALID_CERTIFICATE,
    NotifyType.INVALID_CERT_ENCODING,
    NotifyType.INVALID_SIGNATURE,
    NotifyType.CERT_TYPE_UNSUPPORTED,
)
_REASON_BYTES = 240  # the refusal's text travels in the notify's data, cut to this


def notify_name(value: int) -> str:
    return name_of(NotifyType, value)


# -- receiving --------------------------------------------------------------------------------


def receive(engine: EngineBase, out: Collector, sa: IkeSa, enc: EncryptedMessage, rx: Inbound):
    """An encrypted informational on an established SA (either role)."""
    msg, _ = sa.decrypt(enc)
    sa.check_hash(msg, allow_empty=True)
    if msg.message_id in sa.done_msgids:
        raise IkeProtocolError(f"replayed informational M-ID {msg.message_id:08x}")
    sa.mark_done(msg.message_id)
    sa.last_rx = rx.now
    engine._authenticated(out, sa, rx)  # before any answer: the responder follows the peer
    for p in msg.payloads[1:]:
        if isinstance(p, NotifyPayload):
            on_notify(engine, out, sa, p, rx.now)
        elif isinstance(p, DeletePayload):
            on_delete(engine, out, sa, p, rx.now)


def report_plain(engine: EngineBase, out: Collector, sa: IkeSa, msg: Message, rx: Inbound):
    """An unencrypted informational is unauthenticated: report it, never act on it."""
    for n in msg.find(NotifyPayload):
        out.event(NotifyReceived(sa.handle, n.notify_type, n.protocol, n.spi, n.data, False))
    engine._drop(
        out,
        rx.remote,
        "unencrypted informational: reported, not acted on",
        sa=sa,
        exchange=msg.exchange,
    )


def gateway_refused(ini: Initiator, out: Collector, sa: IkeSa, msg: Message, rx: Inbound):
    """Initiator, waiting for phase-1 message 2: the gateway answered with error notifies."""
    notes = msg.find(NotifyPayload)
    reason = ", ".join(notify_name(n.notify_type) for n in notes) or "notify"
    ini._fail_connecting(
        out, sa, f"gateway refused: {reason}", notes[0].notify_type if notes else None
    )


def phase1_refused(engine: EngineBase, out: Collector, sa: IkeSa, enc: EncryptedMessage, rx):
    """Phase 1 not complete here, and the peer refused our authentication and said why in
    an encrypted notify (:func:`tell_phase1_refused`): the client waiting for main mode
    message 6, the gateway waiting for aggressive mode message 3."""
    msg, _ = sa.decrypt(enc)
    sa.check_hash(msg, allow_empty=False)
    refusals = (*_AUTH_REFUSALS, NotifyType.INVALID_ID_INFORMATION)
    notes = [n for n in msg.find(NotifyPayload) if n.notify_type in refusals]
    if not notes:
        raise IkeProtocolError("informational before phase 1 completed, without a refusal")
    _fail_phase1(engine, out, sa, notes[0], rx.now)


def _fail_phase1(engine: EngineBase, out: Collector, sa: IkeSa, n: NotifyPayload, now: float):
    text = n.data.decode("utf-8", "replace").strip() if n.data.isascii() else ""
    peer = "gateway" if engine.role is Role.INITIATOR else "client"
    reason = f"{peer} refused our authentication: {notify_name(n.notify_type)}"
    engine._remove_sa(
        out, sa, reason + (f" ({text})" if text else ""), now, notify_peer=False,
        failed_stage="phase1",
    )  # fmt: skip


def tell_phase1_refused(
    engine: EngineBase, out: Collector, sa: IkeSa, last_block: bytes, rx: Inbound, exc
) -> None:
    """The peer's phase-1 authentication was refused (the gateway: main mode 5 / aggressive
    3; the client: the gateway's certificate in main mode 6 / aggressive 2), and both ends
    hold the keys: say why in an encrypted, hashed notify rather than leave the peer to
    time out.  IV (RFC 2409 appendix B): hash(last phase-1 CBC block | M-ID), the last
    block being that of the refused message (both ends hold it; aggressive mode 2 is clear
    text: then the phase-1 IV hash(g^xi | g^xr)), as strongSwan's running phase-1 IV is.
    The data carries our reason."""
    sa.p1_last = last_block or sa.p1_iv  # the SA is never established: nothing else reads it
    notify = NotifyPayload(
        getattr(exc, "notify", None) or NotifyType.AUTHENTICATION_FAILED,
        ProtocolId.ISAKMP,
        sa.isakmp_spi,
        getattr(exc, "reason", str(exc)).encode()[:_REASON_BYTES],
    )
    data = sa.protected(ExchangeType.INFORMATIONAL, random_message_id(), [notify])
    marker = rx.local[1] == engine._natt_port() and not rx.tcp
    out.datagrams.append(
        Datagram(data, rx.remote, rx.local[1], non_esp_marker=marker, local_ip=rx.local[0],
                 tcp=rx.tcp)
    )  # fmt: skip


def on_notify(engine: EngineBase, out: Collector, sa: IkeSa, n: NotifyPayload, now: float):
    kind = n.notify_type
    if kind in _AUTH_REFUSALS and not sa.children:
        # gateway: it refused aggressive mode 3 after we were done; client: it refused
        # our certificate in main mode 6, after we were done
        _fail_phase1(engine, out, sa, n, now)
        return
    if kind == NotifyType.DPD_R_U_THERE:
        if len(n.data) == 4:
            ack = NotifyPayload(
                NotifyType.DPD_R_U_THERE_ACK, ProtocolId.ISAKMP, sa.isakmp_spi, n.data
            )
            engine._send_informational(out, sa, [ack])
            engine.stats["dpd_acked"] += 1
        return
    if kind == NotifyType.DPD_R_U_THERE_ACK:
        if len(n.data) == 4 and sa.dpd_pending == struct.unpack("!I", n.data)[0]:
            sa.dpd_pending = None
            sa.dpd_tries = 0
        return
    if kind == NotifyType.ALTIGA_KEEPALIVE:
        engine.stats["altiga_keepalive"] += 1
        return
    if kind == NotifyType.RESPONDER_LIFETIME:
        on_responder_lifetime(engine, sa, n)
        return
    if kind == NotifyType.INITIAL_CONTACT:
        return
    out.event(NotifyReceived(sa.handle, kind, n.protocol, n.spi, n.data, True))
    if kind in _QUICK_REFUSALS and sa.quick:
        quick_mode.refused(engine, out, sa, n)  # either end may have offered


def on_delete(engine: EngineBase, out: Collector, sa: IkeSa, d: DeletePayload, now: float):
    d = engine._interpret_delete(sa, d, now)
    if d.protocol == ProtocolId.ISAKMP:
        for spi in d.spis:
            if len(spi) != ISAKMP_SPI_LEN:
                continue
            target = engine.sas.get((spi[:8], spi[8:]))
            if target is None or not may_delete(sa, target):
                continue
            engine._remove_sa(out, target, "peer-delete", now, notify_peer=False)
        return
    if d.protocol != ProtocolId.ESP:
        return
    for spi in d.spis:
        if len(spi) != 4:
            continue
        value = int.from_bytes(spi, "big")
        for child in list(sa.children.values()):
            if value in (child.inbound_spi, child.outbound_spi):
                engine._remove_child(out, sa, child, "peer-delete", notify_peer=False)


def may_delete(carrier: IkeSa, target: IkeSa) -> bool:
    """An ISAKMP Delete may name another SA (vpnc deletes the pre-rekey one); only the
    same peer's SAs may be deleted that way."""
    if carrier is target:
        return True
    return (
        carrier.remote[0] == target.remote[0]
        and carrier.group_name == target.group_name
        and carrier.user == target.user
    )


def vpnc_rekey_delete(resp: Responder, sa: IkeSa, d: DeletePayload, now: float) -> DeletePayload:
    """vpnc up to 0.5.3+git20220927 (Debian bookworm) names the NEW SA when it deletes
    the old one after a phase-1 rekey (fixed upstream in streambinder/vpnc ef04936).
    Read "delete me" arriving on a freshly rekeyed SA as "delete my predecessor"."""
    predecessor = resp.sas.get((sa.replaces.icookie, sa.replaces.rcookie)) if sa.replaces else None
    fresh = sa.established_at is not None and now - sa.established_at < 60
    if predecessor is None or not fresh:
        return d
    spis = []
    for spi in d.spis:
        if spi == sa.isakmp_spi:
            resp.stats["vpnc_rekey_delete_quirk"] += 1
            spi = predecessor.isakmp_spi
        spis.append(spi)
    return DeletePayload(d.protocol, tuple(spis), d.spi_size, d.doi)


# -- RESPONDER-LIFETIME -----------------------------------------------------------------------


def responder_lifetime_seconds(n: NotifyPayload) -> int | None:
    """The lifetime in seconds a RESPONDER-LIFETIME notify announces (its data is phase-1
    or ESP life attributes by the notify's protocol), None when it carries none we can use:
    a notify we cannot read only means we keep our own lifetime."""
    attrs: tuple[int, int]
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


def responder_lifetime_kilobytes(n: NotifyPayload) -> int | None:
    """The kilobyte lifetime an ESP RESPONDER-LIFETIME announces, None when it has none."""
    try:
        pairs = lifetime_pairs(decode_attributes(n.data), P2Attr.LIFE_TYPE, P2Attr.LIFE_DURATION)
    except (IkeError, ValueError):
        return None
    kilobytes = [value for life_type, value in pairs if life_type == LifeType.KILOBYTES]
    return kilobytes[-1] if kilobytes else None


def shorten_child(child: ChildSa, n: NotifyPayload) -> bool:
    """Apply an ESP RESPONDER-LIFETIME to ``child``; True when anything got shorter."""
    changed = False
    seconds = responder_lifetime_seconds(n)
    if seconds and seconds < child.lifetime:
        child.lifetime = seconds
        child.expires_at = child.established + seconds
        changed = True
    kilobytes = responder_lifetime_kilobytes(n)
    if kilobytes and (child.lifetime_kb is None or kilobytes < child.lifetime_kb):
        child.lifetime_kb = kilobytes
        changed = True
    return changed


def on_responder_lifetime(engine: EngineBase, sa: IkeSa, n: NotifyPayload) -> None:
    """Shorten lifetimes as the responder asks (the rekey times follow the role's policy)."""
    seconds = responder_lifetime_seconds(n)
    if n.protocol == ProtocolId.ISAKMP and sa.established_at is not None:
        if seconds and seconds < sa.lifetime:
            sa.lifetime = seconds
            sa.expires_at = sa.established_at + seconds
            engine._set_rekey(sa)
    elif n.protocol == ProtocolId.ESP and len(n.spi) == 4:
        spi = int.from_bytes(n.spi, "big")
        for child in sa.children.values():
            if spi in (child.inbound_spi, child.outbound_spi) and shorten_child(child, n):
                engine._set_child_rekey(child)


def responder_lifetime_notify(sa: IkeSa) -> NotifyPayload:
    """Our phase-1 lifetime, for a client that offered a longer one."""
    data = (
        Attribute(P1Attr.LIFE_TYPE, LifeType.SECONDS).encode()
        + Attribute.number(P1Attr.LIFE_DURATION, sa.lifetime).encode()
    )
    return NotifyPayload(NotifyType.RESPONDER_LIFETIME, ProtocolId.ISAKMP, sa.isakmp_spi, data)


# -- sending ----------------------------------------------------------------------------------


def send_error_notify(
    engine: EngineBase, out: Collector, sa: IkeSa, notify: int, spi: bytes = b""
) -> None:
    """Tell a keyed peer why its (authenticated) request was refused."""
    if sa.keys is None or sa.p1_last == b"":
        return
    protocol = ProtocolId.ISAKMP if len(spi) != 4 else ProtocolId.ESP
    engine._send_informational(out, sa, [NotifyPayload(notify, protocol, spi)])


def send_dpd(engine: EngineBase, out: Collector, sa: IkeSa, now: float) -> None:
    """R-U-THERE: a new sequence number, or the pending one again."""
    if sa.dpd_pending is None:
        sa.dpd_seq = (sa.dpd_seq + 1) & 0x7FFFFFFF or 1
        sa.dpd_pending = sa.dpd_seq
        sa.dpd_tries = 0
    sa.dpd_tries += 1
    sa.dpd_sent_at = now
    n = NotifyPayload(
        NotifyType.DPD_R_U_THERE,
        ProtocolId.ISAKMP,
        sa.isakmp_spi,
        struct.pack("!I", sa.dpd_pending),
    )
    engine._send_informational(out, sa, [n])
    engine.stats["dpd_sent"] += 1


def send_heartbeat(engine: EngineBase, out: Collector, sa: IkeSa) -> None:
    """The Cisco VPN Client's keepalive (notify 40500, "Altiga keep-alive")."""
    n = NotifyPayload(NotifyType.ALTIGA_KEEPALIVE, ProtocolId.ISAKMP, sa.isakmp_spi)
    engine._send_informational(out, sa, [n])


def send_isakmp_delete(engine: EngineBase, out: Collector, sa: IkeSa, target: IkeSa) -> None:
    """Delete phase-1 SA ``target``, sent over ``sa`` (the same one, or its successor)."""
    d = DeletePayload(ProtocolId.ISAKMP, (target.isakmp_spi,), ISAKMP_SPI_LEN)
    engine._send_informational(out, sa, [d])


def reject_first(
    resp: Responder, out: Collector, msg: Message, rx: Inbound, reason: str, notify: int
) -> None:
    """A first message we refuse: an unauthenticated error notify (tells vpnc quickly)."""
    resp.stats["phase1_rejected"] += 1
    reply = Message(
        msg.icookie,
        bytes(8),
        ExchangeType.INFORMATIONAL,
        (NotifyPayload(notify, ProtocolId.ISAKMP, msg.icookie + bytes(8)),),
    ).encode()
    local = rx.local
    marker = local[1] == resp._natt_port() and not rx.tcp
    out.datagrams.append(Datagram(reply, rx.remote, local[1], marker, local[0], tcp=rx.tcp))
    out.event(ExchangeFailed(None, rx.remote, "phase1", reason, notify))
