"""Vendor ID payload values and their meaning.

Most IKEv1 vendor IDs are an MD5 digest of a well-known string (sometimes truncated, sometimes
followed by version bytes).  They are derived here from those strings, so the table explains
itself; unit tests compare them with the hex values published by vpnc, strongSwan and
libreswan (see the facts file, section 5).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache


def _md5(text: bytes) -> bytes:
    # a name, not a secret: FIPS-restricted OpenSSL builds still allow it for this use
    return hashlib.md5(text, usedforsecurity=False).digest()


class NattVersion(Enum):
    """NAT traversal dialects, best first.  Drafts 00/01 (old clients) are negotiated only
    where configured: IKE does not float to 4500, NAT-D / NAT-OA are 130 / 131, ESP rides
    UDP on the IKE port behind an 8-byte zero non-IKE marker, quick mode says 61443."""

    RFC3947 = "rfc3947"
    DRAFT_03 = "draft-03"
    DRAFT_02N = "draft-02n"  # "draft-ietf-ipsec-nat-t-ike-02\n" (the seed's VPN 3000 sends it)
    DRAFT_02 = "draft-02"
    DRAFT_01 = "draft-01"
    DRAFT_00 = "draft-00"

    @property
    def is_rfc(self) -> bool:
        return self is NattVersion.RFC3947

    @property
    def floats(self) -> bool:
        """IKE moves to the NAT-T port once a NAT is seen (not in drafts 00 and 01)."""
        return self not in (NattVersion.DRAFT_00, NattVersion.DRAFT_01)


NATT_VIDS: dict[NattVersion, bytes] = {
    NattVersion.RFC3947: _md5(b"RFC 3947"),
    NattVersion.DRAFT_03: _md5(b"draft-ietf-ipsec-nat-t-ike-03"),
    NattVersion.DRAFT_02N: _md5(b"draft-ietf-ipsec-nat-t-ike-02\n"),
    NattVersion.DRAFT_02: _md5(b"draft-ietf-ipsec-nat-t-ike-02"),
    NattVersion.DRAFT_01: _md5(b"draft-ietf-ipsec-nat-t-ike-01"),
    NattVersion.DRAFT_00: _md5(b"draft-ietf-ipsec-nat-t-ike-00"),
}
VID_NATT_DRAFT_01 = NATT_VIDS[NattVersion.DRAFT_01]
VID_NATT_DRAFT_00 = NATT_VIDS[NattVersion.DRAFT_00]

VID_XAUTH = _md5(b"draft-ietf-ipsra-isakmp-xauth-06.txt")[:8]
VID_DPD = bytes.fromhex("afcad71368a1f1c96b8696fc77570100")  # RFC 3706, version 1.0
_UNITY_PREFIX = _md5(b"CISCO-UNITY")[:14]
VID_CISCO_UNITY = _UNITY_PREFIX + b"\x01\x00"  # major 1, minor 0
_ALTIGA_PREFIX = _md5(b"ALTIGA GATEWAY")[:14]
VID_ALTIGA_CLIENT = _md5(b"ALTIGA NETWORKS")  # Cisco VPN 3000 client
_FRAGMENTATION = _md5(b"FRAGMENTATION")
# vpnc's own IDs: "delete with reason" and the one it sends in aggressive-mode message 3.
VID_VPNC_DWR = bytes.fromhex("2d7922c6b301d9b0e1342739e9cfbbd5")
VID_VPNC_AM3 = bytes.fromhex("126e1f577291153b20485f7f155b4bc8")
# "HeartBeat_Notify" + version bytes: announces support for the heartbeat notify
VID_HEARTBEAT_NOTIFY = b"HeartBeat_Notify" + bytes.fromhex("386b0100")
# Products that say who they are and nothing else we act on (recognised for the logs).
VID_STRONGSWAN = _md5(b"strongSwan")
VID_RACOON = _md5(b"KAME/racoon")
_MICROSOFT_PREFIX = _md5(b"MS NT5 ISAKMPOAKLEY")  # + 4-byte version (2 = Windows 2000 ...)
PRODUCT_VIDS = {VID_STRONGSWAN: "strongSwan", VID_RACOON: "KAME/racoon"}


def vpn3000_vid(major: int = 3, minor: int = 6) -> bytes:
    """VPN 3000 concentrator vendor ID; the seed's concentrator sends version bytes 03 06."""
    return _ALTIGA_PREFIX + bytes([major, minor])


def fragmentation_vid(capability: int | None = 0xC0000000) -> bytes:
    """IKE fragmentation vendor ID; Cisco appends capability ``c0000000`` (seed log line 54)."""
    if capability is None:
        return _FRAGMENTATION
    return _FRAGMENTATION + capability.to_bytes(4, "big")


@dataclass(frozen=True)
class PeerVendorInfo:
    """What a peer announced with its vendor ID payloads."""

    natt_versions: tuple[NattVersion, ...] = ()
    xauth: bool = False
    dpd: bool = False
    unity: bool = False
    fragmentation: bool = False
    fragmentation_flags: int = 0  # the capability after the VID: 0x80000000 main and aggr.
    vpn3000: tuple[int, int] | None = None
    cisco_client: bool = False
    heartbeat_notify: bool = False
    products: tuple[str, ...] = ()  # "strongSwan", "Microsoft (version 9)", ...
    unknown: tuple[bytes, ...] = ()

    def describe(self) -> str:
        """One line for the logs: what was recognised, and the unknown IDs in hex."""
        names = [f"NAT-T {v.value}" for v in self.natt_versions]
        for flag, name in (
            (self.xauth, "XAUTH"),
            (self.dpd, "DPD"),
            (self.unity, "Cisco Unity"),
            (self.fragmentation, "IKE fragmentation"),
            (self.cisco_client, "Cisco VPN Client"),
            (self.heartbeat_notify, "heartbeat notify"),
        ):
            if flag:
                names.append(name)
        if self.vpn3000 is not None:
            names.append(f"VPN 3000 {self.vpn3000[0]}.{self.vpn3000[1]}")
        names += self.products
        names += [f"unknown {vid.hex()[:32]}" for vid in self.unknown]
        return ", ".join(names) or "none"

    def best_natt(self, preference: tuple[NattVersion, ...]) -> NattVersion | None:
        """The first of ``preference`` the peer also announced."""
        for version in preference:
            if version in self.natt_versions:
                return version
        return None


NO_VENDOR_INFO = PeerVendorInfo()  # a peer that announced nothing (yet)
_NATT_BY_VALUE = {value: version for version, value in NATT_VIDS.items()}  # (once, not per call)


def classify_vendor_ids(vids: list[bytes] | tuple[bytes, ...]) -> PeerVendorInfo:
    """What a peer's vendor IDs say; the same IDs give the same (immutable) answer, so it
    is remembered for the last few sets (a client sends the same ones every session)."""
    return _classify(tuple(vids))


@lru_cache(maxsize=128)  # bounded: a peer choosing random IDs only evicts entries
def _classify(vids: tuple[bytes, ...]) -> PeerVendorInfo:
    natt: list[NattVersion] = []
    unknown: list[bytes] = []
    xauth = dpd = unity = fragmentation = cisco_client = heartbeat = False
    fragmentation_flags = 0
    vpn3000: tuple[int, int] | None = None
    products: list[str] = []
    by_value = _NATT_BY_VALUE
    for vid in vids:
        if vid in by_value:
            natt.append(by_value[vid])
        elif vid in (VID_VPNC_AM3, VID_VPNC_DWR):
            continue
        elif vid == VID_XAUTH:
            xauth = True
        elif vid == VID_DPD:
            dpd = True
        elif len(vid) == 16 and vid[:14] == _UNITY_PREFIX:
            unity = True
        elif len(vid) == 16 and vid[:14] == _ALTIGA_PREFIX:
            vpn3000 = (vid[14], vid[15])
        elif vid == VID_ALTIGA_CLIENT:
            cisco_client = True
        elif vid[:16] == _FRAGMENTATION:
            fragmentation = True
            if len(vid) == 20:
                fragmentation_flags = int.from_bytes(vid[16:], "big")
        elif vid == VID_HEARTBEAT_NOTIFY:
            heartbeat = True
        elif vid in PRODUCT_VIDS:
            products.append(PRODUCT_VIDS[vid])
        elif vid[:16] == _MICROSOFT_PREFIX:
            version = int.from_bytes(vid[16:20], "big") if len(vid) == 20 else None
            products.append("Microsoft" + (f" (version {version})" if version else ""))
        else:
            unknown.append(vid)
    return PeerVendorInfo(
        natt_versions=tuple(natt),
        xauth=xauth,
        dpd=dpd,
        unity=unity,
        fragmentation=fragmentation,
        fragmentation_flags=fragmentation_flags,
        vpn3000=vpn3000,
        cisco_client=cisco_client,
        heartbeat_notify=heartbeat,
        products=tuple(products),
        unknown=tuple(unknown),
    )
