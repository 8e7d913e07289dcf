"""Quick mode (RFC 2409 section 5.5), both roles: the initiator offers an ESP SA pair for one
remote network (message 1), the responder picks a transform and answers (2), the initiator
confirms with HASH(3) (3); the child SA is keyed from SKEYID_d, the nonces and the optional
PFS exchange.  Either end of the phase-1 SA may start one (RFC 2409 5.5): the client for its
networks and its rekeys, the gateway for rekeys on its own lifetime (``qm_policy`` holds what
each role decides).  A rekey is a new quick mode with the same traffic selectors; the end
that started it deletes the old child after a grace period.

Encapsulation: UDP (3, or the drafts' 61443) only when NAT-T is on AND a NAT was seen;
IPsec over TCP and Cisco IPsec over UDP say plain tunnel (1) on the wire.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import TYPE_CHECKING

from ..addrs import host_network
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
from ..config import Phase2Proposal
from ..constants import (
    NONCE_LEN,
    XAUTH_AFTER,
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
from . import children, informational, qm_policy

if TYPE_CHECKING:
    from ..engine import EngineBase
    from ..initiator import Initiator
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
    """The initiator's message 1: ``local_ts`` (default: our address, the Mode-Config one)
    to ``remote_ts``."""
    local = local_ts or _local_ts(sa)
    offer(ini, out, sa, local, remote_ts, ini.config.phase2, now, rekey_of)


def offer(
    engine: EngineBase,
    out: Collector,
    sa: IkeSa,
    local_ts: IPv4Network,
    remote_ts: IPv4Network,
    proposals: tuple[Phase2Proposal, ...],
    now: float,
    rekey_of: int | None = None,
) -> None:
    """Message 1 (either role): offer ``proposals`` for traffic ``local_ts`` <-> ``remote_ts``."""
    mid = random_message_id()
    while mid in sa.quick or mid in sa.done_msgids:
        mid = random_message_id()
    my_spi = engine.new_spi()
    ni_b = random_bytes(NONCE_LEN)
    encap = encapsulation_mode(sa)
    payloads: list = [phase2_sa(proposals, my_spi, encap), NoncePayload(ni_b)]
    pfs = proposals[0].pfs_group
    dh = None
    if pfs is not None:
        dh = modp_exchange(pfs, None, None)
        payloads.append(KePayload(dh.public))
    payloads += [IdPayload.for_network(local_ts), IdPayload.for_network(remote_ts)]
    data = sa.protected(ExchangeType.QUICK, mid, payloads)
    engine.inbound_spis[int.from_bytes(my_spi, "big")] = sa
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
        offered=proposals,
    )
    engine._request(out, sa, _request_key(mid), data, "quick", now)


def _local_ts(sa: IkeSa) -> IPv4Network:
    """Our side: the Mode-Config address, else our own address."""
    if sa.mode_config is not None and sa.mode_config.address is not None:
        return host_network(sa.mode_config.address)
    return host_network(IPv4Address(sa.local[0]))


def receive(engine: EngineBase, out: Collector, sa: IkeSa, enc: EncryptedMessage, rx: Inbound):
    """A quick-mode message (either role): message 2 of one we started, message 1 of one
    the peer starts, or message 3 of one we answered."""
    mid = enc.header.message_id
    if mid in sa.done_msgids:
        raise IkeProtocolError(f"replayed quick mode M-ID {mid:08x}")
    q = sa.quick.get(mid)
    if q is None:
        _answer_msg1(engine, out, sa, enc, rx)
    elif q.pending_child is not None:
        _answer_msg3(engine, out, sa, enc, rx)
    else:
        _started_msg2(engine, out, sa, enc, rx, q)


def _started_msg2(
    ini: EngineBase, out: Collector, sa: IkeSa, enc: EncryptedMessage, rx: Inbound, q: QuickState
):
    """Message 2 -> HASH(3); the child SA is up."""
    now = rx.now
    mid = enc.header.message_id
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
        [HashPayload(qm_hash3(sa.hash_id, sa.keyed.prf_a, mid, q.ni_b, q.nr_b))],
    )
    ini._send(out, sa, final)
    sa.remember_reply(rx.data, (final,))
    del sa.quick[mid]
    sa.mark_done(mid)
    lifetime = min(offer.life_seconds or policy.lifetime, policy.lifetime)
    lifetime_kb = qm_policy.shorter(offer.life_kilobytes, policy.lifetime_kb)
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
        lifetime_kb=lifetime_kb,
        now=now,
    )
    for n in msg.find(NotifyPayload):
        if n.notify_type == NotifyType.RESPONDER_LIFETIME:
            informational.shorten_child(child, n)
        else:
            out.event(NotifyReceived(sa.handle, n.notify_type, n.protocol, n.spi, n.data, True))
    ini._set_child_rekey(child)
    ini._install_child(out, sa, child, q.rekey_of)
    if q.rekey_of is not None and q.rekey_of in sa.children:
        old = sa.children[q.rekey_of]
        old.delete_at = now + qm_policy.rekey_grace(ini)
        old.rekey_at = None
    ini.stats["child_established"] += 1


def rekey(engine: EngineBase, out: Collector, sa: IkeSa, child: ChildSa, now: float) -> None:
    """Start the rekey of ``child`` (either role): same selectors, a new SA pair."""
    child.rekeying = True
    proposals = qm_policy.rekey_offer(engine, sa, child)
    offer(engine, out, sa, child.local_ts, child.remote_ts, proposals, now, child.inbound_spi)
    engine.stats["child_rekeys_started"] += 1


def refused(ini: EngineBase, out: Collector, sa: IkeSa, n: NotifyPayload) -> None:
    """The peer refused our quick-mode offer (NO-PROPOSAL-CHOSEN...): stop retrying it."""
    for mid, q in list(sa.quick.items()):
        if q.pending_child is not None:
            continue  # one we answer, not one we offered
        del sa.quick[mid]
        ini._answered(sa, _request_key(mid))
        abandon(ini, sa, q)
        reason = f"peer refused: {name_of(NotifyType, n.notify_type)}"
        out.event(ExchangeFailed(sa.handle, sa.remote, "quick", reason, n.notify_type))


def unanswered(ini: EngineBase, out: Collector, sa: IkeSa, r: Retransmit) -> None:
    """Our message 1 ran out of retransmissions: only this quick mode fails."""
    q = sa.quick.pop(int(r.key.split("-")[1], 16), None)
    if q is not None:
        abandon(ini, sa, q)
        old = sa.children.get(q.rekey_of) if q.rekey_of is not None else None
        if old is not None:
            old.rekeying = False  # it lives on until it expires (or the peer rekeys it)
    out.event(ExchangeFailed(sa.handle, sa.remote, "quick", "no answer"))


def abandon(engine: EngineBase, sa: IkeSa, q: QuickState) -> None:
    """A quick mode that will not complete: free the inbound SPI it reserved."""
    if q.pending_child is not None:  # responder: the child waiting for HASH(3)
        engine.inbound_spis.pop(q.pending_child.inbound_spi, None)
        sa.mark_done(q.message_id)
    else:
        engine.inbound_spis.pop(int.from_bytes(q.my_spi, "big"), None)


# -- the answering end (either role) -----------------------------------------------------


def _answer_msg1(resp: EngineBase, out: Collector, sa: IkeSa, enc: EncryptedMessage, rx):
    """Message 1 -> 2: choose, key the child, wait for HASH(3) before installing it."""
    now = rx.now
    msg, last = sa.decrypt(enc)
    sa.check_hash(msg)
    if enc.header.flags & Flag.COMMIT:
        raise IkeProtocolError("commit bit not supported", notify=NotifyType.INVALID_FLAGS)
    if sa.negotiated.auth in XAUTH_AFTER and not sa.xauth_ok:
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
        remote_ts, local_ts = qm_policy.selectors(resp, sa, ids)
        encap_ok: tuple[EncapMode, ...]
        if encapsulation_mode(sa) != EncapMode.TUNNEL:
            encap_ok = (EncapMode.UDP_TUNNEL, EncapMode.UDP_TUNNEL_DRAFT)
        else:
            encap_ok = (EncapMode.TUNNEL,)
        choice = choose_esp(sa_p, qm_policy.accepted(resp, sa), encap_ok)
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
    ours = qm_policy.lifetime(resp, sa)
    lifetime = min(choice.offer.life_seconds or ours, ours)
    offered_kb = choice.offer.life_kilobytes
    lifetime_kb = qm_policy.shorter(offered_kb, qm_policy.lifetime_kb(resp, sa))
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
        lifetime_kb=lifetime_kb,
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
    shorter_kb = lifetime_kb is not None and lifetime_kb != offered_kb
    if qm_policy.sends_responder_lifetime(resp) and (
        offered_life is None or offered_life > lifetime or shorter_kb
    ):
        life = (
            Attribute(P2Attr.LIFE_TYPE, LifeType.SECONDS).encode()
            + Attribute.number(P2Attr.LIFE_DURATION, lifetime).encode()
        )
        if lifetime_kb is not None:
            life += (
                Attribute(P2Attr.LIFE_TYPE, LifeType.KILOBYTES).encode()
                + Attribute.number(P2Attr.LIFE_DURATION, lifetime_kb).encode()
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
        deadline=now + qm_policy.exchange_timeout(resp),
    )
    sa.remember_reply(rx.data, (reply,))
    resp._send(out, sa, reply)


def _answer_msg3(resp: EngineBase, out: Collector, sa: IkeSa, enc: EncryptedMessage, rx):
    """HASH(3): install the child, as the rekey of the one with the same selectors (the
    peer renews it: we do not rekey it ourselves; the peer deletes it after its grace)."""
    q = sa.quick[enc.header.message_id]
    msg, last = sa.decrypt(enc)
    h = msg.first(HashPayload)
    if h is None or len(msg.payloads) != 1:
        raise IkeProtocolError(
            "quick mode message 3 must be a lone HASH", notify=NotifyType.PAYLOAD_MALFORMED
        )
    expected = qm_hash3(sa.hash_id, sa.keyed.prf_a, msg.message_id, q.ni_b, q.nr_b)
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
            if rekey_of is None or old.delete_at is None:  # prefer one not yet replaced
                rekey_of = old.inbound_spi
            old.rekey_at = None
    if rekey_of is None and sa.replaces is not None:
        pred = resp.sas.get((sa.replaces.icookie, sa.replaces.rcookie))
        if pred is not None:
            for old in pred.children.values():
                if old.local_ts == child.local_ts and old.remote_ts == child.remote_ts:
                    rekey_of = old.inbound_spi
    resp._set_child_rekey(child)
    resp._install_child(out, sa, child, rekey_of, started_by_peer=True)
    resp.stats["child_established"] += 1
    if rekey_of is not None:
        resp.stats["child_rekeys_answered"] += 1
