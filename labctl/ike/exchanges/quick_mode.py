"""Quick mode (RFC 2409 section 5.5), both roles: the initiator offers an ESP SA pair for one
remote network (message 1), the responder picks a transform and answers (2), the initiator
confirms with HASH(3) (3); the child SA is keyed from SKEYID_d, the nonces and the optional
PFS exchange.  Rekeys are new quick modes; the initiator decides them, the responder
recognises them by their traffic selectors.

Encapsulation: UDP (3, or the drafts' 61443) only when NAT-T is on AND a NAT was seen;
IPsec over TCP and Cisco IPsec over UDP say plain tunnel (1) on the wire.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import TYPE_CHECKING

from ..attributes import Attribute
from ..codec import (
    EncryptedMessage,
    HashPayload,
    IdPayload,
    KePayload,
    NatOaPayload,
    NoncePayload,
    NotifyPayload,
    Proposal,
    SaPayload,
)
from ..constants import (
    NONCE_LEN,
    AuthMethod,
    EncapMode,
    ExchangeType,
    Flag,
    LifeType,
    NotifyType,
    P2Attr,
    ProtocolId,
    name_of,
)
from ..crypto import modp_exchange, random_bytes, same_digest
from ..errors import IkeProtocolError
from ..events import Collector, ExchangeFailed, NotifyReceived
from ..keys import qm_hash3
from ..proposals import accept_esp_reply, choose_esp, phase2_sa
from ..sa import ChildSa, IkeSa, QuickState, Retransmit, random_message_id
from . import children, informational

if TYPE_CHECKING:
    from ..engine import EngineBase
    from ..initiator import Initiator
    from ..responder import Responder
    from ..transitions import Inbound

_REFUSALS = (NotifyType.NO_PROPOSAL_CHOSEN, NotifyType.INVALID_ID_INFORMATION)


def _request_key(mid: int) -> str:
    return f"qm-{mid:08x}"


def encapsulation_mode(sa: IkeSa) -> EncapMode:
    """What quick mode offers / accepts on this SA: UDP only when NAT-T is on AND a NAT was
    seen (never on TCP: there the stream frames ESP)."""
    if sa.tcp:
        return EncapMode.TUNNEL
    if sa.natt is not None and (sa.local_behind_nat or sa.remote_behind_nat):
        return EncapMode.UDP_TUNNEL if not sa.natd_draft else EncapMode.UDP_TUNNEL_DRAFT
    return EncapMode.TUNNEL


# -- initiator --------------------------------------------------------------------------------


def start(
    ini: Initiator,
    out: Collector,
    sa: IkeSa,
    remote_ts: IPv4Network,
    now: float,
    rekey_of: int | None = None,
    local_ts: IPv4Network | None = None,
) -> None:
    """Message 1: offer our proposals for traffic between ``local_ts`` (default: us) and
    ``remote_ts``."""
    cfg = ini.config
    mid = random_message_id()
    my_spi = ini.new_spi()
    ni_b = random_bytes(NONCE_LEN)
    encap = encapsulation_mode(sa)
    local_ts = local_ts or _local_ts(sa)
    payloads: list = [phase2_sa(cfg.phase2, my_spi, encap), NoncePayload(ni_b)]
    pfs = cfg.phase2[0].pfs_group
    dh = None
    if pfs is not None:
        dh = modp_exchange(pfs, None, None)
        payloads.append(KePayload(dh.public))
    payloads += [IdPayload.for_network(local_ts), IdPayload.for_network(remote_ts)]
    data = sa.protected(ExchangeType.QUICK, mid, payloads)
    ini.inbound_spis[int.from_bytes(my_spi, "big")] = sa
    sa.quick[mid] = QuickState(
        mid,
        ni_b,
        dh=dh,
        my_spi=my_spi,
        local_ts=local_ts,
        remote_ts=remote_ts,
        started=now,
        encap=encap,
        rekey_of=rekey_of,
        offered=cfg.phase2,
    )
    ini._request(out, sa, _request_key(mid), data, "quick", now)


def _local_ts(sa: IkeSa) -> IPv4Network:
    """Our side: the Mode-Config address, else our own address."""
    if sa.mode_config is not None and sa.mode_config.address is not None:
        return IPv4Network(sa.mode_config.address)
    return IPv4Network(IPv4Address(sa.local[0]))


def initiator_msg2(ini: Initiator, out: Collector, sa: IkeSa, enc: EncryptedMessage, rx: Inbound):
    """Message 2 -> HASH(3); the child SA is up."""
    now = rx.now
    mid = enc.header.message_id
    q = sa.quick.get(mid)
    if q is None:
        raise IkeProtocolError(
            f"quick mode M-ID {mid:08x} not ours (responder rekeys are not supported)"
        )
    if q.local_ts is None or q.remote_ts is None:
        raise IkeProtocolError(f"quick mode M-ID {mid:08x} has no selectors of ours")
    local_ts, remote_ts = q.local_ts, q.remote_ts
    msg, last = sa.decrypt(enc)
    sa.check_hash(msg, prefix=q.ni_b)
    sa_p = msg.first(SaPayload)
    nonce = msg.first(NoncePayload)
    if sa_p is None or nonce is None:
        raise IkeProtocolError(
            "quick mode message 2 lacks SA or NONCE", notify=NotifyType.PAYLOAD_MALFORMED
        )
    prop, offer, policy = accept_esp_reply(sa_p, q.offered, q.encap)
    ids = msg.find(IdPayload)
    if ids and (
        len(ids) != 2 or ids[0].as_network() != q.local_ts or ids[1].as_network() != q.remote_ts
    ):
        raise IkeProtocolError(
            "responder changed the quick mode IDs", notify=NotifyType.INVALID_ID_INFORMATION
        )
    gqm = None
    if offer.pfs_group is not None:
        ke = msg.first(KePayload)
        if ke is None:
            raise IkeProtocolError(
                "PFS reply without KE", notify=NotifyType.INVALID_KEY_INFORMATION
            )
        gqm = modp_exchange(offer.pfs_group, q.dh, ke.data)
    sa.commit_iv(msg, last)
    sa.last_rx = now
    ini._answered(sa, _request_key(mid))
    q.nr_b = nonce.data
    final = sa.encrypt(
        ExchangeType.QUICK,
        mid,
        [HashPayload(qm_hash3(sa.hash_id, sa.keyed.skeyid_a, mid, q.ni_b, q.nr_b))],
    )
    ini._send(out, sa, final)
    sa.remember_reply(rx.data, (final,))
    del sa.quick[mid]
    sa.mark_done(mid)
    lifetime = min(offer.life_seconds or policy.lifetime, policy.lifetime)
    child = children.make_child(
        sa,
        message_id=mid,
        my_spi=q.my_spi,
        peer_spi=prop.spi,
        offer=offer,
        policy=policy,
        ni_b=q.ni_b,
        nr_b=q.nr_b,
        gqm=gqm,
        local_ts=local_ts,
        remote_ts=remote_ts,
        lifetime=lifetime,
        now=now,
    )
    for n in msg.find(NotifyPayload):
        if n.notify_type == NotifyType.RESPONDER_LIFETIME:
            seconds = informational.responder_lifetime_seconds(n)
            if seconds and 0 < seconds < child.lifetime:
                child.lifetime = seconds
                child.expires_at = child.established + seconds
        else:
            out.event(NotifyReceived(sa.handle, n.notify_type, n.protocol, n.spi, n.data, True))
    ini._set_child_rekey(child)
    ini._install_child(out, sa, child, q.rekey_of)
    if q.rekey_of is not None and q.rekey_of in sa.children:
        old = sa.children[q.rekey_of]
        old.delete_at = now + ini.config.child_rekey_grace
        old.rekey_at = None
    ini.stats["child_established"] += 1


def rekey(ini: Initiator, out: Collector, sa: IkeSa, child: ChildSa, now: float) -> None:
    child.rekeying = True
    start(ini, out, sa, child.remote_ts, now, rekey_of=child.inbound_spi, local_ts=child.local_ts)


def refused(ini: Initiator, out: Collector, sa: IkeSa, n: NotifyPayload) -> None:
    """The gateway refused our quick-mode offer (NO-PROPOSAL-CHOSEN...): stop retrying it."""
    for mid, q in list(sa.quick.items()):
        del sa.quick[mid]
        ini._answered(sa, _request_key(mid))
        abandon(ini, sa, q)
        reason = f"gateway refused: {name_of(NotifyType, n.notify_type)}"
        out.event(ExchangeFailed(sa.handle, sa.remote, "quick", reason, n.notify_type))


def unanswered(ini: Initiator, out: Collector, sa: IkeSa, r: Retransmit) -> None:
    """Our message 1 ran out of retransmissions: only this quick mode fails."""
    q = sa.quick.pop(int(r.key.split("-")[1], 16), None)
    if q is not None:
        abandon(ini, sa, q)
    out.event(ExchangeFailed(sa.handle, sa.remote, "quick", "no answer"))


def abandon(engine: EngineBase, sa: IkeSa, q: QuickState) -> None:
    """A quick mode that will not complete: free the inbound SPI it reserved."""
    if q.pending_child is not None:  # responder: the child waiting for HASH(3)
        engine.inbound_spis.pop(q.pending_child.inbound_spi, None)
        sa.mark_done(q.message_id)
    else:
        engine.inbound_spis.pop(int.from_bytes(q.my_spi, "big"), None)


# -- responder --------------------------------------------------------------------------------


def responder_receive(
    resp: Responder, out: Collector, sa: IkeSa, enc: EncryptedMessage, rx: Inbound
):
    mid = enc.header.message_id
    if mid in sa.done_msgids:
        raise IkeProtocolError(f"replayed quick mode M-ID {mid:08x}")
    if mid in sa.quick:
        _responder_msg3(resp, out, sa, enc, rx)
    else:
        _responder_msg1(resp, out, sa, enc, rx)


def _responder_msg1(resp: Responder, out: Collector, sa: IkeSa, enc: EncryptedMessage, rx):
    """Message 1 -> 2: choose, key the child, wait for HASH(3) before installing it."""
    now = rx.now
    msg, last = sa.decrypt(enc)
    sa.check_hash(msg)
    if enc.header.flags & Flag.COMMIT:
        raise IkeProtocolError("commit bit not supported", notify=NotifyType.INVALID_FLAGS)
    if sa.negotiated.auth == AuthMethod.XAUTH_INIT_PSK and not sa.xauth_ok:
        raise IkeProtocolError("quick mode before XAUTH succeeded")
    sa_p = msg.first(SaPayload)
    nonce = msg.first(NoncePayload)
    if sa_p is None or nonce is None:
        raise IkeProtocolError(
            "quick mode message 1 lacks SA or NONCE", notify=NotifyType.PAYLOAD_MALFORMED
        )
    if not 8 <= len(nonce.data) <= 256:
        raise IkeProtocolError(
            f"nonce of {len(nonce.data)} bytes", notify=NotifyType.PAYLOAD_MALFORMED
        )
    ids = msg.find(IdPayload)
    try:
        remote_ts, local_ts = _selectors(resp, sa, ids)
        encap_ok: tuple[EncapMode, ...]
        if encapsulation_mode(sa) != EncapMode.TUNNEL:
            encap_ok = (EncapMode.UDP_TUNNEL, EncapMode.UDP_TUNNEL_DRAFT)
        else:
            encap_ok = (EncapMode.TUNNEL,)
        choice = choose_esp(sa_p, resp._phase2_for(sa), encap_ok)
    except IkeProtocolError as exc:
        # Authenticated but unacceptable: say why (vpnc and our initiator give up at once)
        notify = exc.notify if exc.notify in _REFUSALS else NotifyType.NO_PROPOSAL_CHOSEN
        sa.commit_iv(msg, last)
        sa.mark_done(msg.message_id)
        informational.send_error_notify(resp, out, sa, notify)
        out.event(ExchangeFailed(sa.handle, sa.remote, "quick", str(exc), notify))
        sa.remember_reply(rx.data, ())
        return
    ke = msg.first(KePayload)
    gqm = None
    dh = None
    if choice.offer.pfs_group is not None:
        if ke is None:
            raise IkeProtocolError(
                "PFS proposal without KE", notify=NotifyType.INVALID_KEY_INFORMATION
            )
        dh = modp_exchange(choice.offer.pfs_group, None, None)
        gqm = modp_exchange(choice.offer.pfs_group, dh, ke.data)
    elif ke is not None:
        raise IkeProtocolError("KE without a PFS group", notify=NotifyType.INVALID_KEY_INFORMATION)
    # -- everything checked: commit
    sa.commit_iv(msg, last)
    sa.last_rx = now
    resp._authenticated(out, sa, rx)
    my_spi = resp.new_spi()
    nr_b = random_bytes(NONCE_LEN)
    policy = resp.policy
    ours = resp._ipsec_lifetime(sa)
    lifetime = min(choice.offer.life_seconds or ours, ours)
    child = children.make_child(
        sa,
        message_id=msg.message_id,
        my_spi=my_spi,
        peer_spi=choice.proposal.spi,
        offer=choice.offer,
        policy=choice.policy,
        ni_b=nonce.data,
        nr_b=nr_b,
        gqm=gqm,
        local_ts=local_ts,
        remote_ts=remote_ts,
        lifetime=lifetime,
        now=now,
    )
    payloads: list = [
        SaPayload(
            (Proposal(choice.proposal.number, ProtocolId.ESP, my_spi, (choice.transform,)),),
            sa_p.doi,
            sa_p.situation,
        ),
        NoncePayload(nr_b),
    ]
    if dh is not None:
        payloads.append(KePayload(dh.public))
    payloads += ids
    payloads += [p for p in msg.payloads if isinstance(p, NatOaPayload)]
    offered_life = choice.offer.life_seconds
    if policy.send_responder_lifetime and (offered_life is None or offered_life > lifetime):
        life = (
            Attribute(P2Attr.LIFE_TYPE, LifeType.SECONDS).encode()
            + Attribute.number(P2Attr.LIFE_DURATION, lifetime).encode()
        )
        payloads.append(NotifyPayload(NotifyType.RESPONDER_LIFETIME, ProtocolId.ESP, my_spi, life))
    reply = sa.protected(ExchangeType.QUICK, msg.message_id, payloads, prefix=nonce.data)
    resp.inbound_spis[child.inbound_spi] = sa  # reserve the SPI now
    sa.quick[msg.message_id] = QuickState(
        msg.message_id,
        nonce.data,
        nr_b,
        my_spi=my_spi,
        local_ts=local_ts,
        remote_ts=remote_ts,
        started=now,
        pending_child=child,
        deadline=now + policy.exchange_timeout,
    )
    sa.remember_reply(rx.data, (reply,))
    resp._send(out, sa, reply)


def _selectors(resp: Responder, sa: IkeSa, ids: list[IdPayload]):
    """(client network, our network) from IDci/IDcr, checked against the session."""
    if len(ids) not in (0, 2):
        raise IkeProtocolError(
            f"quick mode with {len(ids)} ID payloads", notify=NotifyType.INVALID_ID_INFORMATION
        )
    if ids:
        remote_ts, local_ts = ids[0].as_network(), ids[1].as_network()
        if remote_ts is None or local_ts is None:
            raise IkeProtocolError(
                "quick mode IDs are not IPv4 networks", notify=NotifyType.INVALID_ID_INFORMATION
            )
    elif sa.lan_to_lan is not None:
        raise IkeProtocolError(
            "LAN-to-LAN quick mode without IDs", notify=NotifyType.INVALID_ID_INFORMATION
        )
    else:
        remote_ts = IPv4Network(sa.remote[0])
        local_ts = IPv4Network(sa.local[0])
    if sa.lan_to_lan is not None:  # network to network: inside the entry's lists
        if not sa.lan_to_lan.covers(local_ts, remote_ts):
            raise IkeProtocolError(
                f"LAN-to-LAN {sa.lan_to_lan.name!r}: {remote_ts} <-> {local_ts} is outside "
                "its network lists",
                notify=NotifyType.INVALID_ID_INFORMATION,
            )
        return remote_ts, local_ts
    assigned = sa.mode_config.address if sa.mode_config is not None else None
    if assigned is not None and remote_ts != IPv4Network(assigned):
        raise IkeProtocolError(
            f"client ID {remote_ts} is not its assigned address {assigned}",
            notify=NotifyType.INVALID_ID_INFORMATION,
        )
    if not resp._may_reach(sa, local_ts):
        raise IkeProtocolError(
            f"responder ID {local_ts} not allowed", notify=NotifyType.INVALID_ID_INFORMATION
        )
    return remote_ts, local_ts


def _responder_msg3(resp: Responder, out: Collector, sa: IkeSa, enc: EncryptedMessage, rx):
    """HASH(3): install the child, as the rekey of the one with the same selectors."""
    q = sa.quick[enc.header.message_id]
    msg, last = sa.decrypt(enc)
    h = msg.first(HashPayload)
    if h is None or len(msg.payloads) != 1:
        raise IkeProtocolError(
            "quick mode message 3 must be a lone HASH", notify=NotifyType.PAYLOAD_MALFORMED
        )
    expected = qm_hash3(sa.hash_id, sa.keyed.skeyid_a, msg.message_id, q.ni_b, q.nr_b)
    if not same_digest(expected, h.data):
        raise IkeProtocolError(
            "quick mode HASH(3) mismatch", notify=NotifyType.INVALID_HASH_INFORMATION
        )
    sa.commit_iv(msg, last)
    sa.last_rx = rx.now
    resp._authenticated(out, sa, rx)
    del sa.quick[msg.message_id]
    sa.mark_done(msg.message_id)
    child = q.pending_child
    if child is None:
        raise IkeProtocolError(
            f"quick mode M-ID {msg.message_id:08x}: no child SA waits for HASH(3)"
        )
    rekey_of = None
    for old in sa.children.values():
        if old.local_ts == child.local_ts and old.remote_ts == child.remote_ts:
            rekey_of = old.inbound_spi
    if rekey_of is None and sa.replaces is not None:
        pred = resp.sas.get((sa.replaces.icookie, sa.replaces.rcookie))
        if pred is not None:
            for old in pred.children.values():
                if old.local_ts == child.local_ts and old.remote_ts == child.remote_ts:
                    rekey_of = old.inbound_spi
    resp._install_child(out, sa, child, rekey_of)
    resp.stats["child_established"] += 1
