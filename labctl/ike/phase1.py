"""Pieces of phase 1 both roles use: vendor ID lists, NAT discovery, key setup, the
algorithm summary for events."""

from __future__ import annotations

from .codec import NatDPayload, VendorIdPayload
from .config import VendorIdentity
from .crypto import HASH_NAMES
from .events import Endpoint, NatStatus, Phase1Algorithms
from .keys import derive_phase1, natd_hash, phase1_iv, skeyid_psk
from .proposals import auth_method_name, cipher_for
from .sa import IkeSa
from .vendor import (
    NATT_VIDS,
    VID_ALTIGA_CLIENT,
    VID_CISCO_UNITY,
    VID_DPD,
    VID_XAUTH,
    NattVersion,
    fragmentation_vid,
    vpn3000_vid,
)


def leading_vids(identity: VendorIdentity, natt: tuple[NattVersion, ...]) -> list[VendorIdPayload]:
    """Vendor IDs in the order the seed's VPN 3000 sent them: Unity, XAUTH, DPD, NAT-T."""
    vids = []
    if identity.unity:
        vids.append(VendorIdPayload(VID_CISCO_UNITY))
    if identity.xauth:
        vids.append(VendorIdPayload(VID_XAUTH))
    if identity.dpd:
        vids.append(VendorIdPayload(VID_DPD))
    vids += [VendorIdPayload(NATT_VIDS[v]) for v in natt]
    return vids


def trailing_vids(identity: VendorIdentity) -> list[VendorIdPayload]:
    """The VIDs the seed's concentrator put after its NAT-D payloads."""
    vids = []
    if identity.fragmentation:
        vids.append(VendorIdPayload(fragmentation_vid()))
    if identity.vpn3000_version is not None:
        vids.append(VendorIdPayload(vpn3000_vid(*identity.vpn3000_version)))
    if identity.cisco_client:
        vids.append(VendorIdPayload(VID_ALTIGA_CLIENT))
    return vids


def natd_payloads(sa: IkeSa, peer: Endpoint, me: Endpoint, *, fake_nat: bool = False):
    """Two NAT-D payloads: the peer's address as we see it, then our own."""
    first = natd_hash(sa.hash_id, sa.icookie, sa.rcookie, peer[0], peer[1])
    mine = natd_hash(sa.hash_id, sa.icookie, sa.rcookie, me[0], me[1])
    if fake_nat:  # "force NAT-T": claim our own address changed on the way
        mine = bytes([mine[0] ^ 1]) + mine[1:]
    return [NatDPayload(first, sa.natd_draft), NatDPayload(mine, sa.natd_draft)]


def check_natd(sa: IkeSa, natds: list[NatDPayload], me: Endpoint, peer: Endpoint):
    """(we are behind NAT, peer is behind NAT) from the peer's NAT-D payloads: the first
    carries our address as the peer saw it, the others the peer's own addresses."""
    if len(natds) < 2:
        return False, False
    mine = natd_hash(sa.hash_id, sa.icookie, sa.rcookie, me[0], me[1])
    theirs = natd_hash(sa.hash_id, sa.icookie, sa.rcookie, peer[0], peer[1])
    local_behind = natds[0].data != mine
    remote_behind = all(n.data != theirs for n in natds[1:])
    return local_behind, remote_behind


def setup_keys(sa: IkeSa, psk: bytes, gxy: bytes) -> None:
    """SKEYID... and the phase-1 IV, once nonces, DH values and cookies are known."""
    cipher = cipher_for(sa.offer)
    sa.cipher = cipher
    sa.hash_id = sa.offer.hash
    skeyid = skeyid_psk(sa.hash_id, psk, sa.ni_b, sa.nr_b)
    sa.keys = derive_phase1(sa.hash_id, cipher, skeyid, gxy, sa.icookie, sa.rcookie)
    sa.p1_iv = phase1_iv(sa.hash_id, sa.gxi, sa.gxr, cipher.block_size)


def algorithms(sa: IkeSa) -> Phase1Algorithms:
    offer = sa.offer
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


def quick_encapsulation(sa: IkeSa) -> int:
    """ESP encapsulation mode for quick mode: UDP only when NAT-T is on AND a NAT was seen
    (never on TCP: there ESP is framed by the stream, quick mode says plain tunnel)."""
    if sa.tcp:
        return 1
    if sa.natt is not None and (sa.local_behind_nat or sa.remote_behind_nat):
        return 3 if not sa.natd_draft else 61443
    return 1
