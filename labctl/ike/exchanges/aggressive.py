"""Aggressive mode (RFC 2409 section 5.4, pre-shared key), both roles -- what vpnc and the
Cisco VPN Client speak to a VPN 3000:

1. I -> R  SA, KE, Ni, IDii, vendor IDs         (the group name is the ID)
2. R -> I  SA, KE, Nr, IDir, HASH_R, VIDs, NAT-D
3. I -> R  HASH_I [INITIAL-CONTACT] [NAT-D]      (encrypted; on 4500 after a float)

Message 3 has no answer of its own: with XAUTH the initiator resends it until the gateway's
XAUTH request shows it arrived.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..codec import (
    EncryptedMessage,
    HashPayload,
    IdPayload,
    KePayload,
    Message,
    NoncePayload,
    NotifyPayload,
    SaPayload,
    SigPayload,
    VendorIdPayload,
)
from ..config import NattMode
from ..constants import (
    INITIATOR_SIGNS,
    NONCE_LEN,
    RESPONDER_SIGNS,
    XAUTH_AFTER,
    ExchangeType,
    IdType,
    NotifyType,
)
from ..crypto import modp_exchange, modp_length, random_bytes, same_digest
from ..errors import IkeProtocolError
from ..events import Collector
from ..keys import hash_i, hash_r
from ..payloads import Payload
from ..proposals import accept_phase1_reply, choose_phase1
from ..sa import IkeSa
from ..states import Phase1State, Role
from ..vendor import VID_VPNC_AM3
from . import informational, phase1, signature
from .phase1 import leading_vids, natd_payloads, setup_keys, trailing_vids

if TYPE_CHECKING:
    from ..initiator import Initiator
    from ..responder import Responder
    from ..transitions import Inbound

_MODP_GROUPS = (1, 2, 5, 14)


# -- initiator --------------------------------------------------------------------------------


def start(ini: Initiator, sa: IkeSa, sa_payload: SaPayload) -> bytes:
    """Message 1 (the caller sends it and resends it until message 2 arrives)."""
    group = ini.config.phase1[0].group
    sa.dh = modp_exchange(group, None, None)
    sa.gxi = sa.dh.public
    sa.ni_b = random_bytes(NONCE_LEN)
    # one ID for every proposal: a DN only when each of them has us sign
    signs = all(p.auth in INITIATOR_SIGNS for p in ini.config.phase1)
    ident = signature.identity(ini) if signs else ini._identity()
    sa.idi_b = ident.encode_body()
    payloads: list[Payload] = [sa_payload, KePayload(sa.gxi), NoncePayload(sa.ni_b), ident]
    if any(p.auth in RESPONDER_SIGNS for p in ini.config.phase1):
        payloads += signature.request(ini)
    payloads += ini._vendor_ids()
    sa.state = Phase1State.AM_SENT1
    return Message(sa.icookie, bytes(8), ExchangeType.AGGRESSIVE, tuple(payloads)).encode()


def initiator_msg2(ini: Initiator, out: Collector, sa: IkeSa, msg: Message, rx: Inbound):
    """Message 2 -> 3: check the gateway's HASH_R with trial keys, then adopt them."""
    cfg = ini.config
    now = rx.now
    sa_p = msg.first(SaPayload)
    ke = msg.first(KePayload)
    nonce = msg.first(NoncePayload)
    ident = msg.first(IdPayload)
    h = msg.first(HashPayload)
    signed = msg.first(SigPayload) is not None
    if None in (sa_p, ke, nonce, ident) or (h is None and not signed):
        raise IkeProtocolError(
            "aggressive mode message 2 lacks a payload", notify=NotifyType.PAYLOAD_MALFORMED
        )
    for n in msg.find(NotifyPayload):
        if n.notify_type != NotifyType.RESPONDER_LIFETIME:
            raise IkeProtocolError(f"unexpected notify {n.notify_type} in message 2")
    offer, chosen = accept_phase1_reply(sa_p, cfg.phase1)
    if len(ke.data) != modp_length(offer.group):
        raise IkeProtocolError(
            "responder KE has the wrong length", notify=NotifyType.INVALID_KEY_INFORMATION
        )
    gxy = modp_exchange(offer.group, sa.dh, ke.data)
    idr_b = phase1.body_as_received(msg, IdPayload)
    # trial keys: nothing is adopted before HASH_R (or the signature) checks out
    keys, p1_iv = phase1.phase1_keys(
        offer, cfg.psk, gxy, sa.ni_b, nonce.data, sa.icookie, msg.rcookie, sa.gxi, ke.data
    )
    expected = hash_r(
        keys.hash_id, keys.prf_skeyid, sa.gxi, ke.data, sa.icookie, msg.rcookie, sa.sai_b, idr_b
    )
    signature.note_requests(sa, msg)
    signs = offer.auth in INITIATOR_SIGNS
    if offer.auth in RESPONDER_SIGNS:
        # the certificate checks (and a refusal's notify) work on a trial SA of their own
        trial = IkeSa(Role.INITIATOR, sa.icookie, msg.rcookie, sa.mode, sa.local, sa.remote, now)
        trial.offer, trial.ni_b, trial.nr_b = offer, sa.ni_b, nonce.data
        trial.gxi, trial.gxr = sa.gxi, ke.data
        trial.keys, trial.p1_iv = keys, p1_iv
        trial.cipher, trial.hash_id = keys.cipher, keys.hash_id
        try:
            signature.check(ini, trial, msg, ident, expected)
        except IkeProtocolError as exc:
            reason = f"gateway certificate refused: {exc.reason}"
            refusal = IkeProtocolError(reason, notify=exc.notify)
            informational.tell_phase1_refused(ini, out, trial, b"", rx, refusal)
            ini._fail_connecting(out, sa, reason, exc.notify)
            return
        sa.peer_certificate = trial.peer_certificate
    elif h is None or not same_digest(expected, h.data):
        ini._fail_connecting(
            out, sa, "HASH_R mismatch (wrong group password?)", NotifyType.AUTHENTICATION_FAILED
        )
        return
    # authenticated: adopt
    ini._answered(sa, "am1")
    ini._key_in(sa, msg.rcookie)
    sa.offer, sa.chosen = offer, chosen
    sa.nr_b, sa.gxr = nonce.data, ke.data
    sa.cipher, sa.hash_id, sa.keys, sa.p1_iv = keys.cipher, keys.hash_id, keys, p1_iv
    sa.idr_b = idr_b
    sa.peer_id = signature.describe(ident)
    sa.lifetime = min(offer.life_seconds or chosen.lifetime, chosen.lifetime)
    for n in msg.find(NotifyPayload):
        informational.on_responder_lifetime(ini, sa, n)
    phase1.peer_natt(ini, sa, msg)
    phase1.detect_nat(ini, sa, msg)
    digest = hash_i(
        sa.hash_id, sa.keyed.prf_skeyid, sa.gxi, sa.gxr, sa.icookie, sa.rcookie, sa.sai_b, sa.idi_b
    )
    proof = signature.proof(ini, digest) if signs else [HashPayload(digest)]
    payloads: list = [*proof, *phase1.initial_contact_notify(ini, sa)]
    payloads.append(VendorIdPayload(VID_VPNC_AM3))
    if sa.natt is not None and sa.peer_vendor.natt_versions:
        payloads += natd_payloads(sa, sa.remote, sa.local, fake_nat=cfg.natt is NattMode.FORCE)
    old_remote = sa.remote
    phase1.maybe_float(ini, sa)
    msg3 = sa.encrypt(ExchangeType.AGGRESSIVE, 0, payloads)
    sa.p1_last = sa.p1_iv
    sa.remember_reply(rx.data, (msg3,))
    phase1.initiator_established(ini, out, sa, now, old_remote)
    if offer.auth in XAUTH_AFTER:
        # message 3 has no reply of its own: resend it until XAUTH starts
        ini._request(out, sa, "am3", msg3, "phase1", now)
    else:
        ini._send(out, sa, msg3)
        ini._after_auth(out, sa, now)


# -- responder --------------------------------------------------------------------------------


def responder_msg1(resp: Responder, out: Collector, _: None, msg: Message, rx: Inbound):
    """Message 1 -> 2: the group (by its ID) picks the key and the acceptable transforms."""
    sa_p = msg.first(SaPayload)
    ke = msg.first(KePayload)
    nonce = msg.first(NoncePayload)
    ident = msg.first(IdPayload)
    if sa_p is None or ke is None or nonce is None or ident is None:
        raise IkeProtocolError(
            "aggressive mode message 1 lacks SA, KE, NONCE or ID",
            notify=NotifyType.PAYLOAD_MALFORMED,
        )
    phase1.check_nonce(nonce.data)
    # a certificate peer names itself by its DN: its group comes from its certificate (msg 3)
    signs = ident.id_type == IdType.DER_ASN1_DN and resp.policy.certificate is not None
    group = None if signs else resp._group_for(ident)
    if group is None and not signs:
        reason = f"unknown group {ident.describe()}"
        informational.reject_first(resp, out, msg, rx, reason, NotifyType.INVALID_ID_INFORMATION)
        return None
    ke_groups = [g for g in _MODP_GROUPS if modp_length(g) == len(ke.data)]
    if group is not None:
        acceptable = resp._policy_for_group(group)
    else:
        acceptable = tuple(p for p in resp.policy.phase1 if p.auth in INITIATOR_SIGNS)
    try:
        choice = choose_phase1(sa_p, acceptable, ke_group=ke_groups[0] if ke_groups else -1)
    except IkeProtocolError as exc:
        informational.reject_first(resp, out, msg, rx, str(exc), NotifyType.NO_PROPOSAL_CHOSEN)
        return None
    sa = resp._new_sa(msg, "aggressive", rx)
    dh = modp_exchange(choice.offer.group, None, None)
    gxy = modp_exchange(choice.offer.group, dh, ke.data)  # validates the peer's value
    sa.offer, sa.chosen = choice.offer, choice.policy
    if group is not None:
        sa.group, sa.group_name = group, group.name
    sa.peer_id = signature.describe(ident)
    sa.gxi, sa.gxr = ke.data, dh.public
    sa.ni_b, sa.nr_b = nonce.data, random_bytes(NONCE_LEN)
    sa.sai_b = phase1.body_as_received(msg, SaPayload)
    sa.idi_b = phase1.body_as_received(msg, IdPayload)
    sa.lifetime = resp._phase1_lifetime(choice.offer)
    setup_keys(sa, group.psk if group is not None else b"", gxy)
    signature.note_requests(sa, msg)
    gateway_signs = signature.gateway_signs(sa)
    id_r = signature.identity(resp) if gateway_signs else phase1.responder_identity(rx.local)
    sa.idr_b = id_r.encode_body()
    digest = hash_r(
        sa.hash_id, sa.keyed.prf_skeyid, sa.gxi, sa.gxr, sa.icookie, sa.rcookie, sa.sai_b, sa.idr_b
    )
    proof = signature.proof(resp, digest) if gateway_signs else [HashPayload(digest)]
    payloads: list = [
        phase1.reply_sa(choice, sa_p),
        KePayload(sa.gxr),
        NoncePayload(sa.nr_b),
        id_r,
        *proof,
    ]
    if signs:  # we will check the client's certificate in message 3: ask for it
        payloads += signature.request(resp)
    payloads += leading_vids(resp.policy.vendor, (sa.natt,) if sa.natt else ())
    if sa.natt is not None:
        payloads += natd_payloads(sa, rx.remote, rx.local)
    payloads += trailing_vids(resp.policy.vendor)
    reply = Message(sa.icookie, sa.rcookie, ExchangeType.AGGRESSIVE, tuple(payloads)).encode()
    resp._hold_half_open(out, sa, Phase1State.AM_SENT2, rx, reply)
    resp.stats["am1"] += 1
    return sa


def responder_msg3(resp: Responder, out: Collector, sa: IkeSa, enc: EncryptedMessage, rx: Inbound):
    """Message 3: HASH_I proves the group password; the SA is established."""
    msg, last = sa.decrypt(enc)
    h = msg.first(HashPayload)
    signs = signature.uses_signature(sa)
    if h is None and not signs:
        raise IkeProtocolError(
            "aggressive mode message 3 without HASH_I", notify=NotifyType.INVALID_HASH_INFORMATION
        )
    expected = hash_i(
        sa.hash_id, sa.keyed.prf_skeyid, sa.gxi, sa.gxr, sa.icookie, sa.rcookie, sa.sai_b, sa.idi_b
    )
    try:
        if signs:
            signature.admit_client(resp, sa, msg, IdPayload.decode(sa.idi_b, 0), expected)
        elif h is None or not same_digest(expected, h.data):
            sa.last_error = "HASH_I mismatch (wrong group password?)"
            raise IkeProtocolError(sa.last_error, notify=NotifyType.AUTHENTICATION_FAILED)
    except IkeProtocolError as exc:
        if signature.gateway_signs(sa):  # certificates: say why (PSK peers time out, as before)
            informational.tell_phase1_refused(resp, out, sa, last, rx, exc)
        raise
    sa.commit_iv(msg, last)
    sa.p1_last = last
    phase1.responder_established(resp, out, sa, msg, rx)
