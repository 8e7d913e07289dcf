"""Main mode (RFC 2409 section 5, identity protection, pre-shared key), both roles:

1. I -> R  SA, vendor IDs            2. R -> I  SA, vendor IDs
3. I -> R  KE, Ni, NAT-D             4. R -> I  KE, Nr, NAT-D
5. I -> R  IDii, HASH_I (encrypted)  6. R -> I  IDir, HASH_R (encrypted)

The pre-shared key must be known before the peer's identity is (message 5), so the
responder uses one group's key for every main-mode peer (``ResponderPolicy.main_mode_group``).
With RSA signatures (auth 3) messages 5 and 6 carry ID_DER_ASN1_DN, CERT and SIG instead of
HASH (:mod:`.signature`), and the group comes from the client's certificate.
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
    SaPayload,
)
from ..config import NattMode
from ..constants import NONCE_LEN, RESPONDER_SIGNS, XAUTH_AFTER, ExchangeType, NotifyType
from ..crypto import modp_exchange, random_bytes, same_digest
from ..errors import IkeProtocolError
from ..events import Collector
from ..keys import hash_i, hash_r
from ..payloads import Payload
from ..proposals import accept_phase1_reply, choose_phase1
from ..sa import IkeSa
from ..states import Phase1State
from . import informational, phase1, signature
from .phase1 import check_natd, leading_vids, natd_payloads, setup_keys, trailing_vids

if TYPE_CHECKING:
    from ..initiator import Initiator
    from ..responder import Responder
    from ..transitions import Inbound


# -- initiator --------------------------------------------------------------------------------


def start(ini: Initiator, sa: IkeSa, sa_payload: SaPayload) -> bytes:
    """Message 1 (the caller sends it and resends it until message 2 arrives)."""
    sa.state = Phase1State.MM_SENT1
    payloads: tuple[Payload, ...] = (sa_payload, *ini._vendor_ids())
    return Message(sa.icookie, bytes(8), ExchangeType.MAIN, payloads).encode()


def initiator_msg2(ini: Initiator, out: Collector, sa: IkeSa, msg: Message, rx: Inbound):
    """Message 2 -> 3: the gateway's choice; our DH value and nonce."""
    sa_p = msg.first(SaPayload)
    if sa_p is None:
        raise IkeProtocolError(
            "main mode message 2 without SA", notify=NotifyType.PAYLOAD_MALFORMED
        )
    offer, chosen = accept_phase1_reply(sa_p, ini.config.phase1)
    ini._answered(sa, "mm1")
    ini._key_in(sa, msg.rcookie)
    sa.offer, sa.chosen = offer, chosen
    sa.hash_id = offer.hash
    sa.lifetime = min(offer.life_seconds or chosen.lifetime, chosen.lifetime)
    phase1.peer_natt(ini, sa, msg)
    sa.dh = modp_exchange(offer.group, None, None)
    sa.gxi = sa.dh.public
    sa.ni_b = random_bytes(NONCE_LEN)
    payloads: list = [KePayload(sa.gxi), NoncePayload(sa.ni_b)]
    if sa.natt is not None:
        sa.natd_draft = not sa.natt.is_rfc
        fake_nat = ini.config.natt is NattMode.FORCE
        payloads += natd_payloads(sa, sa.remote, sa.local, fake_nat=fake_nat)
    if signature.gateway_signs(sa):
        payloads += signature.request(ini)
    msg3 = Message(sa.icookie, sa.rcookie, ExchangeType.MAIN, tuple(payloads)).encode()
    sa.state = Phase1State.MM_SENT3
    sa.remember_reply(rx.data, (msg3,))
    ini._request(out, sa, "mm3", msg3, "phase1", rx.now)


def initiator_msg4(ini: Initiator, out: Collector, sa: IkeSa, msg: Message, rx: Inbound):
    """Message 4 -> 5: keys; our identity and HASH_I, encrypted (after a float, on 4500)."""
    ke = msg.first(KePayload)
    nonce = msg.first(NoncePayload)
    if ke is None or nonce is None:
        raise IkeProtocolError(
            "main mode message 4 lacks KE or NONCE", notify=NotifyType.PAYLOAD_MALFORMED
        )
    gxy = modp_exchange(sa.negotiated.group, sa.dh, ke.data)
    ini._answered(sa, "mm3")
    sa.gxr, sa.nr_b = ke.data, nonce.data
    setup_keys(sa, ini.config.psk, gxy)
    phase1.detect_nat(ini, sa, msg)
    signature.note_requests(sa, msg)
    signs = signature.uses_signature(sa)
    ident = signature.identity(ini) if signs else ini._identity()
    sa.idi_b = ident.encode_body()
    digest = hash_i(
        sa.hash_id, sa.keyed.prf_skeyid, sa.gxi, sa.gxr, sa.icookie, sa.rcookie, sa.sai_b, sa.idi_b
    )
    proof = signature.proof(ini, digest) if signs else [HashPayload(digest)]
    payloads: list = [ident, *proof, *phase1.initial_contact_notify(ini, sa)]
    phase1.maybe_float(ini, sa)
    msg5 = sa.encrypt(ExchangeType.MAIN, 0, payloads)
    sa.state = Phase1State.MM_SENT5
    sa.remember_reply(rx.data, (msg5,))
    ini._request(out, sa, "mm5", msg5, "phase1", rx.now)


def initiator_msg6(ini: Initiator, out: Collector, sa: IkeSa, enc: EncryptedMessage, rx):
    """Message 6: HASH_R proves the gateway knows the key; the SA is established."""
    now = rx.now
    msg, last = sa.decrypt(enc)
    ident = msg.first(IdPayload)
    h = msg.first(HashPayload)
    signs = signature.gateway_signs(sa)
    if ident is None or (h is None and not signs):
        raise IkeProtocolError(
            "main mode message 6 lacks ID or HASH", notify=NotifyType.PAYLOAD_MALFORMED
        )
    idr_b = phase1.body_as_received(msg, IdPayload)
    expected = hash_r(
        sa.hash_id, sa.keyed.prf_skeyid, sa.gxi, sa.gxr, sa.icookie, sa.rcookie, sa.sai_b, idr_b
    )
    ini._answered(sa, "mm5")
    if signs:
        try:
            signature.check(ini, sa, msg, ident, expected)
        except IkeProtocolError as exc:
            reason = f"gateway certificate refused: {exc.reason}"
            refusal = IkeProtocolError(reason, notify=exc.notify)
            informational.tell_phase1_refused(ini, out, sa, last, rx, refusal)
            ini._remove_sa(out, sa, reason, now, notify_peer=False, failed_stage="phase1")
            return
    elif h is None or not same_digest(expected, h.data):
        reason = "HASH_R mismatch (wrong pre-shared key?)"
        ini._remove_sa(out, sa, reason, now, notify_peer=False, failed_stage="phase1")
        return
    sa.commit_iv(msg, last)
    sa.p1_last = last
    sa.idr_b = idr_b
    sa.peer_id = signature.describe(ident) if signs else ident.describe()
    phase1.initiator_established(ini, out, sa, now, sa.first_remote)
    if sa.negotiated.auth not in XAUTH_AFTER:
        ini._after_auth(out, sa, now)


# -- responder --------------------------------------------------------------------------------


def responder_msg1(resp: Responder, out: Collector, _: None, msg: Message, rx: Inbound):
    """Message 1 -> 2: choose a transform of the peer's LAN-to-LAN entry (by its address),
    else of the main-mode group's."""
    sa_p = msg.first(SaPayload)
    if sa_p is None:
        raise IkeProtocolError(
            "main mode message 1 without SA", notify=NotifyType.PAYLOAD_MALFORMED
        )
    policy = resp.policy
    l2l = None if rx.tcp else resp._lan_to_lan_for(rx.remote[0])
    group = policy.groups.get(policy.main_mode_group) if policy.main_mode_group else None
    # certificate peers: the group comes from the certificate (message 5)
    # (ResponderPolicy refuses signature proposals without a certificate and CA)
    signed = tuple(p for p in policy.phase1 if p.auth in RESPONDER_SIGNS)
    if group is None and l2l is None and not signed:
        reason = "main mode not enabled"
        informational.reject_first(resp, out, msg, rx, reason, NotifyType.NO_PROPOSAL_CHOSEN)
        return None
    if l2l is not None:
        proposals = l2l.phase1
    else:
        proposals = (resp._policy_for_group(group) if group is not None else ()) + signed
    try:
        choice = choose_phase1(sa_p, proposals)
    except IkeProtocolError as exc:
        informational.reject_first(resp, out, msg, rx, str(exc), NotifyType.NO_PROPOSAL_CHOSEN)
        return None
    sa = resp._new_sa(msg, "main", rx)
    sa.offer, sa.chosen = choice.offer, choice.policy
    if l2l is not None:
        resp._bind_lan_to_lan(sa, l2l)
    elif choice.policy.auth not in RESPONDER_SIGNS and group is not None:
        sa.group, sa.group_name = group, group.name
    sa.sai_b = phase1.body_as_received(msg, SaPayload)
    sa.lifetime = resp._phase1_lifetime(choice.offer, sa)
    payloads: list = [phase1.reply_sa(choice, sa_p)]
    payloads += leading_vids(policy.vendor, (sa.natt,) if sa.natt else ())
    payloads += trailing_vids(policy.vendor)
    reply = Message(sa.icookie, sa.rcookie, ExchangeType.MAIN, tuple(payloads)).encode()
    resp._hold_half_open(out, sa, Phase1State.MM_SENT2, rx, reply)
    resp.stats["mm1"] += 1
    return sa


def responder_msg3(resp: Responder, out: Collector, sa: IkeSa, msg: Message, rx: Inbound):
    """Message 3 -> 4: DH and nonces, NAT discovery."""
    ke = msg.first(KePayload)
    nonce = msg.first(NoncePayload)
    if ke is None or nonce is None:
        raise IkeProtocolError(
            "main mode message 3 lacks KE or NONCE", notify=NotifyType.PAYLOAD_MALFORMED
        )
    phase1.check_nonce(nonce.data)
    dh = modp_exchange(sa.negotiated.group, None, None)
    gxy = modp_exchange(sa.negotiated.group, dh, ke.data)
    sa.gxi, sa.gxr = ke.data, dh.public
    sa.ni_b, sa.nr_b = nonce.data, random_bytes(NONCE_LEN)
    if sa.lan_to_lan is not None:
        psk = sa.lan_to_lan.psk
    elif sa.group is not None:
        psk = sa.group.psk
    elif signature.gateway_signs(sa):
        psk = b""  # SKEYID comes from the nonces and g^xy (RFC 2409 5.1)
    else:
        raise IkeProtocolError("main mode key exchange before a tunnel group was chosen")
    setup_keys(sa, psk, gxy)
    natds = phase1.natd_of(msg)
    if sa.natt is not None and natds:
        sa.local_behind_nat, sa.remote_behind_nat = check_natd(sa, natds, rx.local, rx.remote)
    signature.note_requests(sa, msg)
    payloads: list = [KePayload(sa.gxr), NoncePayload(sa.nr_b)]
    if sa.natt is not None:
        payloads += natd_payloads(sa, rx.remote, rx.local)
    if signature.uses_signature(sa):  # we will check the client's certificate: ask for it
        payloads += signature.request(resp)
    reply = Message(sa.icookie, sa.rcookie, ExchangeType.MAIN, tuple(payloads)).encode()
    sa.state = Phase1State.MM_SENT4
    sa.remember_reply(rx.data, (reply,))
    resp._send(out, sa, reply)


def responder_msg5(resp: Responder, out: Collector, sa: IkeSa, enc: EncryptedMessage, rx):
    """Message 5 -> 6: HASH_I proves the client knows the key; the SA is established."""
    msg, last = sa.decrypt(enc)
    ident = msg.first(IdPayload)
    h = msg.first(HashPayload)
    signs = signature.uses_signature(sa)
    if ident is None or (h is None and not signs):
        raise IkeProtocolError(
            "main mode message 5 lacks ID or HASH", notify=NotifyType.PAYLOAD_MALFORMED
        )
    idi_b = phase1.body_as_received(msg, IdPayload)
    expected = hash_i(
        sa.hash_id, sa.keyed.prf_skeyid, sa.gxi, sa.gxr, sa.icookie, sa.rcookie, sa.sai_b, idi_b
    )
    try:
        if signs:
            signature.admit_client(resp, sa, msg, ident, expected)
        elif h is None or not same_digest(expected, h.data):
            sa.last_error = "HASH_I mismatch (wrong pre-shared key?)"
            raise IkeProtocolError(sa.last_error, notify=NotifyType.AUTHENTICATION_FAILED)
        elif signature.is_hybrid(sa.negotiated.auth):
            _hybrid_group(resp, sa, ident)
    except IkeProtocolError as exc:
        if signature.gateway_signs(sa):  # certificates: say why (PSK peers time out, as before)
            informational.tell_phase1_refused(resp, out, sa, last, rx, exc)
        raise
    sa.commit_iv(msg, last)
    sa.idi_b = idi_b
    sa.peer_id = signature.describe(ident) if signs else ident.describe()
    gateway_signs = signature.gateway_signs(sa)
    id_r = signature.identity(resp) if gateway_signs else phase1.responder_identity(rx.local)
    sa.idr_b = id_r.encode_body()
    digest = hash_r(
        sa.hash_id, sa.keyed.prf_skeyid, sa.gxi, sa.gxr, sa.icookie, sa.rcookie, sa.sai_b, sa.idr_b
    )
    proof = signature.proof(resp, digest) if gateway_signs else [HashPayload(digest)]
    reply = sa.encrypt(ExchangeType.MAIN, 0, [id_r, *proof])
    sa.p1_last = sa.p1_iv
    phase1.responder_established(resp, out, sa, msg, rx, first_reply=reply)


def _hybrid_group(resp: Responder, sa: IkeSa, ident: IdPayload) -> None:
    """Hybrid main mode: no certificate names the client's group; its ID does (KEY_ID), as
    in aggressive mode; XAUTH then authenticates the user."""
    group = resp._group_for(ident)
    try:
        if group is None:
            raise IkeProtocolError(
                f"hybrid client names no group ({ident.describe()})",
                notify=NotifyType.INVALID_ID_INFORMATION,
            )
        signature.check_group_auth(group, sa.negotiated.auth)
    except IkeProtocolError as exc:
        sa.last_error = exc.reason
        raise
    sa.group, sa.group_name = group, group.name
