"""What both phase-1 exchanges (main mode, aggressive mode) share: vendor ID lists, NAT
discovery (RFC 3947), key setup, and each role's last step -- the SA is established: its
event, then XAUTH, Mode-Config or quick mode as the role's policy says.  Also the
summaries of an SA for events and status displays."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from ..codec import (
    IdPayload,
    Message,
    NatDPayload,
    NotifyPayload,
    Proposal,
    SaPayload,
    VendorIdPayload,
)
from ..config import NattMode, VendorIdentity
from ..constants import IPPROTO_UDP, RESPONDER_SIGNS, XAUTH_AFTER, NotifyType, ProtocolId
from ..crypto import HASH_NAMES
from ..errors import IkeProtocolError
from ..events import (
    ChildInfo,
    Collector,
    Endpoint,
    NatStatus,
    PeerEndpointChanged,
    Phase1Algorithms,
    Phase1Established,
    SessionInfo,
)
from ..keys import (
    Phase1Keys,
    derive_phase1,
    natd_hash,
    phase1_iv,
    skeyid_psk,
    skeyid_signature,
)
from ..proposals import Phase1Choice, Phase1Offer, auth_method_name, cipher_for
from ..records import frozen
from ..sa import IkeSa
from ..states import Phase1State, XauthState
from ..vendor import (
    NATT_VIDS,
    VID_ALTIGA_CLIENT,
    VID_CISCO_UNITY,
    VID_DPD,
    VID_XAUTH,
    NattVersion,
    classify_vendor_ids,
    fragmentation_vid,
    vpn3000_vid,
)
from . import mode_config, xauth

if TYPE_CHECKING:
    from ..initiator import Initiator
    from ..responder import Responder
    from ..transitions import Inbound


# The VID runs depend on the (frozen) configuration alone and the payloads are immutable:
# built once per configuration, not ~14 payload objects per session.
@lru_cache(maxsize=64)
def leading_vids(
    identity: VendorIdentity, natt: tuple[NattVersion, ...]
) -> tuple[VendorIdPayload, ...]:
    """Vendor IDs in the order the seed's VPN 3000 sent them: Unity, XAUTH, DPD, NAT-T."""
    vids = []
    if identity.unity:
        vids.append(VendorIdPayload(VID_CISCO_UNITY))
    if identity.xauth:
        vids.append(VendorIdPayload(VID_XAUTH))
    if identity.dpd:
        vids.append(VendorIdPayload(VID_DPD))
    vids += [VendorIdPayload(NATT_VIDS[v]) for v in natt]
    return tuple(vids)


@lru_cache(maxsize=64)
def trailing_vids(identity: VendorIdentity) -> tuple[VendorIdPayload, ...]:
    """The VIDs the seed's concentrator put after its NAT-D payloads."""
    vids = []
    if identity.fragmentation:
        vids.append(VendorIdPayload(fragmentation_vid()))
    if identity.vpn3000_version is not None:
        vids.append(VendorIdPayload(vpn3000_vid(*identity.vpn3000_version)))
    if identity.cisco_client:
        vids.append(VendorIdPayload(VID_ALTIGA_CLIENT))
    return tuple(vids)


def natd_payloads(sa: IkeSa, peer: Endpoint, me: Endpoint, *, fake_nat: bool = False):
    """Two NAT-D payloads: the peer's address as we see it, then our own."""
    first = natd_hash(sa.hash_id, sa.icookie, sa.rcookie, peer[0], peer[1])
    mine = natd_hash(sa.hash_id, sa.icookie, sa.rcookie, me[0], me[1])
    if fake_nat:  # "force NAT-T": claim our own address changed on the way
        mine = bytes([mine[0] ^ 1]) + mine[1:]
    return [NatDPayload(first, sa.natd_draft), NatDPayload(mine, sa.natd_draft)]


def natd_of(msg: Message) -> list[NatDPayload]:
    return [p for p in msg.payloads if isinstance(p, NatDPayload)]


def check_natd(
    sa: IkeSa,
    natds: list[NatDPayload],
    me: Endpoint,
    peer: Endpoint,
    *,
    floated: tuple[Endpoint, Endpoint] | None = None,
):
    """(we are behind NAT, peer is behind NAT) from the peer's NAT-D payloads: the first
    carries our address as the peer saw it, the others the peer's own addresses.

    ``floated``: the (ours, theirs) endpoints the message actually travelled between, when
    the peer floated before sending it. A hash over either pair matches: aggressive mode's
    message 3 comes from 4500, and charon hashes it over the ports it sends from, where
    vpnc and our initiator hash the port-500 endpoints of messages 1 and 2."""
    if len(natds) < 2:
        return False, False
    pairs = [(me, peer)] if floated is None else [(me, peer), floated]
    mine = {natd_hash(sa.hash_id, sa.icookie, sa.rcookie, *ours) for ours, _ in pairs}
    theirs = {natd_hash(sa.hash_id, sa.icookie, sa.rcookie, *peers) for _, peers in pairs}
    local_behind = natds[0].data not in mine
    remote_behind = all(n.data not in theirs for n in natds[1:])
    return local_behind, remote_behind


def setup_keys(sa: IkeSa, psk: bytes, gxy: bytes) -> None:
    """SKEYID... and the phase-1 IV, once nonces, DH values and cookies are known."""
    sa.keys, sa.p1_iv = phase1_keys(
        sa.negotiated, psk, gxy, sa.ni_b, sa.nr_b, sa.icookie, sa.rcookie, sa.gxi, sa.gxr
    )
    sa.cipher, sa.hash_id = sa.keys.cipher, sa.keys.hash_id


def phase1_keys(
    offer: Phase1Offer,
    psk: bytes,
    gxy: bytes,
    ni_b: bytes,
    nr_b: bytes,
    icookie: bytes,
    rcookie: bytes,
    gxi: bytes,
    gxr: bytes,
) -> tuple[Phase1Keys, bytes]:
    """(keys, phase-1 IV) of a negotiated transform (what setup_keys puts on an SA; the
    initiator checks message 2's HASH_R with them before it adopts anything)."""
    cipher = cipher_for(offer)
    hash_id = offer.hash
    if offer.auth in RESPONDER_SIGNS:  # RFC 2409 5.1: the nonces key the prf
        skeyid = skeyid_signature(hash_id, ni_b, nr_b, gxy)
    else:
        skeyid = skeyid_psk(hash_id, psk, ni_b, nr_b)
    keys = derive_phase1(hash_id, cipher, skeyid, gxy, icookie, rcookie)
    return keys, phase1_iv(hash_id, gxi, gxr, cipher.block_size)


def algorithms(sa: IkeSa) -> Phase1Algorithms:
    offer = sa.negotiated
    return Phase1Algorithms(
        encryption=sa.cipher.name if sa.cipher else "?",
        hash=HASH_NAMES.get(offer.hash, str(offer.hash)),
        dh_group=offer.group,
        auth_method=auth_method_name(offer.auth),
        lifetime=sa.lifetime,
        encryption_id=offer.encryption,
        key_bits=offer.key_bits,
        hash_id=offer.hash,
    )


def nat_status(sa: IkeSa) -> NatStatus:
    nat = sa.local_behind_nat or sa.remote_behind_nat
    if sa.tcp:
        encapsulation = "tcp"
    elif sa.natt is not None and nat:
        encapsulation = "udp"
    elif sa.cisco_udp_port is not None:
        encapsulation = "cisco-udp"
    else:
        encapsulation = "none"
    return NatStatus(
        natt_version=sa.natt.value if sa.natt is not None else None,
        local_behind_nat=sa.local_behind_nat,
        remote_behind_nat=sa.remote_behind_nat,
        floated=sa.floated,
        encapsulation=encapsulation,
    )


def session_info(sa: IkeSa) -> SessionInfo:
    """A snapshot of an established SA for status displays (no keys)."""
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
    return SessionInfo(
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


def established_event(sa: IkeSa, *, initial_contact: bool) -> Phase1Established:
    return frozen(  # every field in one step, as children.child_event
        Phase1Established,
        {
            "handle": sa.handle,
            "role": sa.role,
            "mode": sa.mode,
            "peer": sa.remote,
            "local": sa.local,
            "algorithms": algorithms(sa),
            "nat": nat_status(sa),
            "group": sa.group_name,
            "peer_id": sa.peer_id,
            "xauth_pending": sa.negotiated.auth in XAUTH_AFTER,
            "peer_vendor": sa.peer_vendor,
            "replaces": sa.replaces,
            "initial_contact": initial_contact,
            "lan_to_lan": sa.lan_to_lan.name if sa.lan_to_lan is not None else None,
            "enc_key": sa.keyed.enc_key,
        },
    )


def check_nonce(nonce: bytes) -> None:
    """RFC 2409: nonces are 8..256 bytes."""
    if not 8 <= len(nonce) <= 256:
        raise IkeProtocolError(f"nonce of {len(nonce)} bytes", notify=NotifyType.PAYLOAD_MALFORMED)


def body_as_received(msg: Message, payload: type) -> bytes:
    """The body of ``msg``'s first ``payload`` as received (generic header cut): what the
    phase-1 hashes cover (SAi_b, IDii_b, IDir_b)."""
    index = next(i for i, p in enumerate(msg.payloads) if isinstance(p, payload))
    return msg.raw_payload(index)[4:]


# -- initiator --------------------------------------------------------------------------------


def initial_contact_notify(ini: Initiator, sa: IkeSa) -> list[NotifyPayload]:
    """INITIAL-CONTACT on a first phase 1 (not on our own rekeys), when configured."""
    if ini.config.initial_contact and sa.replaces is None:
        return [NotifyPayload(NotifyType.INITIAL_CONTACT, ProtocolId.ISAKMP, sa.isakmp_spi)]
    return []


def peer_natt(ini: Initiator, sa: IkeSa, msg: Message) -> None:
    """The gateway's vendor IDs: which NAT-T dialect we share, which NAT-D numbers it uses."""
    sa.peer_vendor = classify_vendor_ids([v.data for v in msg.find(VendorIdPayload)])
    if ini.config.natt.offers_natt:
        sa.natt = sa.peer_vendor.best_natt(ini.config.natt_versions)
    natds = natd_of(msg)
    if natds and sa.natt is not None:
        sa.natd_draft = natds[0].draft


def detect_nat(ini: Initiator, sa: IkeSa, msg: Message) -> None:
    """The gateway's NAT-D payloads: who is behind a NAT ("force": we claim to be)."""
    natds = natd_of(msg)
    if sa.natt is None or not natds:
        sa.natt = None if not natds else sa.natt
        return
    sa.local_behind_nat, sa.remote_behind_nat = check_natd(sa, natds, sa.local, sa.remote)
    if ini.config.natt is NattMode.FORCE:
        sa.local_behind_nat = True


def maybe_float(ini: Initiator, sa: IkeSa) -> None:
    """A NAT on the way and NAT-T agreed: IKE moves to the NAT-T port (RFC 3947 section 4)."""
    nat = sa.local_behind_nat or sa.remote_behind_nat
    if sa.natt is not None and sa.natt.floats and nat and not sa.floated:
        port = ini.config.natt_port
        sa.local = (sa.local[0], port)
        sa.remote = (sa.remote[0], port)
        sa.floated = True


def initiator_established(
    ini: Initiator, out: Collector, sa: IkeSa, now: float, old_remote: Endpoint
) -> None:
    sa.state = Phase1State.ESTABLISHED
    sa.established_at = now
    sa.last_rx = now
    sa.expires_at = now + sa.lifetime
    ini._set_rekey(sa)
    xauth_pending = sa.negotiated.auth in XAUTH_AFTER
    sa.xauth = XauthState.PENDING if xauth_pending else XauthState.NONE
    if ini.config.altiga_keepalive_interval:
        sa.next_heartbeat = now + ini.config.altiga_keepalive_interval
    if sa.replaces is None:
        ini.current = sa
    ini.stats["phase1_established"] += 1
    if old_remote != sa.remote:
        out.event(PeerEndpointChanged(sa.handle, old_remote, sa.remote, sa.local[1]))
    initial_contact = ini.config.initial_contact and sa.replaces is None
    out.event(established_event(sa, initial_contact=initial_contact))


# -- responder --------------------------------------------------------------------------------


def reply_sa(choice: Phase1Choice, offered: SaPayload) -> SaPayload:
    """The responder's SA: the chosen transform exactly as offered (RFC 2409 section 5)."""
    return SaPayload(
        (Proposal(choice.proposal_number, ProtocolId.ISAKMP, b"", (choice.transform,)),),
        offered.doi,
        offered.situation,
    )


def responder_identity(local: Endpoint) -> IdPayload:
    return IdPayload.ipv4(local[0], IPPROTO_UDP, local[1])


def responder_established(
    resp: Responder,
    out: Collector,
    sa: IkeSa,
    msg: Message,
    rx: Inbound,
    first_reply: bytes | None = None,
) -> None:
    """The client authenticated (aggressive message 3, main mode message 5): established;
    then XAUTH, or a pushed Mode-Config, as the policy says.  ``first_reply``: main mode's
    message 6, sent once the SA follows the client's current endpoint."""
    now = rx.now
    if sa.mode == "aggressive" and sa.natt is not None:
        natds = natd_of(msg)
        if natds:
            sa.local_behind_nat, sa.remote_behind_nat = check_natd(
                sa, natds, sa.first_local, sa.first_remote, floated=(rx.local, rx.remote)
            )
    sa.initial_contact = any(
        n.notify_type == NotifyType.INITIAL_CONTACT for n in msg.find(NotifyPayload)
    )
    old_remote = sa.remote
    resp._move_to(sa, rx.remote, rx.local)
    sa.state = Phase1State.ESTABLISHED
    sa.established_at = now
    sa.last_rx = now
    sa.expires_at = now + sa.lifetime
    sa.deadline_for_msg = None
    resp._half_open.pop((sa.icookie, sa.first_remote), None)
    resp.stats["phase1_established"] += 1
    if old_remote != rx.remote:
        out.event(PeerEndpointChanged(sa.handle, old_remote, rx.remote, rx.local[1]))
    if first_reply is not None:
        resp._send(out, sa, first_reply)
    xauth_pending = sa.negotiated.auth in XAUTH_AFTER
    if not xauth_pending:
        resp._set_user(sa, None)
        resp._apply_initial_contact(out, sa, now)
        resp._adopt_predecessor(out, sa)
    out.event(established_event(sa, initial_contact=sa.initial_contact))
    replies: list[bytes] = [first_reply] if first_reply is not None else []
    if xauth_pending:
        replies.append(xauth.start(resp, out, sa, now))
    elif resp.policy.modecfg_push:
        pushed = mode_config.push(resp, out, sa, now)
        if pushed is None:
            return  # no address: the SA is gone
        replies.append(pushed)
    sa.remember_reply(rx.data, tuple(replies))
