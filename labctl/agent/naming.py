"""How the VPN 3000 screens name algorithms and modes (pure lookups)."""

from __future__ import annotations

from ..ike.encapsulation import Encapsulation

_ENCRYPTION = {
    "3des-cbc": "3DES-168",
    "aes128-cbc": "AES-128",
    "aes192-cbc": "AES-192",
    "aes256-cbc": "AES-256",
    "des-cbc": "DES-56",
    "null": "NULL",
}
_HASH = {
    "md5": "MD5",
    "sha1": "SHA1",
    "sha2-256": "SHA-256",
    "hmac-md5-96": "MD5",
    "hmac-sha1-96": "SHA1",
    "hmac-sha2-256-128": "SHA-256",
}
_DH = {
    1: "Group 1 (768-bit)",
    2: "Group 2 (1024-bit)",
    5: "Group 5 (1536-bit)",
    14: "Group 14 (2048-bit)",
}
_AUTH = {"psk": "Pre-Shared Keys", "xauth_init_psk": "Pre-Shared Keys (XAUTH)"}
_PROTOCOL = {
    Encapsulation.TUNNEL: "IPsec",
    Encapsulation.UDP_TUNNEL: "IPsec/NAT-T",
    Encapsulation.UDP_TUNNEL_DRAFT: "IPsec/NAT-T",
    Encapsulation.UDP_NON_IKE: "IPsec/NAT-T",  # drafts 00/01, on UDP 500
    Encapsulation.CISCO_UDP: "IPsec/UDP",
    Encapsulation.TCP: "IPsec/TCP",
}


def encryption_name(engine_name: str) -> str:
    return _ENCRYPTION.get(engine_name, engine_name.upper())


def hash_name(engine_name: str) -> str:
    return _HASH.get(engine_name, engine_name.upper())


def dh_group_name(group: int) -> str:
    return _DH.get(group, f"Group {group}")


def auth_mode_name(engine_name: str) -> str:
    return _AUTH.get(engine_name, engine_name)


def protocol_name(encapsulation: Encapsulation | None) -> str:
    return _PROTOCOL[Encapsulation(encapsulation or Encapsulation.TUNNEL)]


def split_app_version(version: str | None) -> tuple[str, str]:
    """'Cisco Systems VPN Client 3.6.1 (Rel):WinNT' -> ('WinNT', '3.6.1 (Rel)')."""
    if not version:
        return "-", "-"
    text = version.removeprefix("Cisco Systems VPN Client").strip()
    if ":" in text:
        release, os_name = text.rsplit(":", 1)
        return os_name.strip() or "-", release.strip() or "-"
    return "-", text or "-"


def netmask_text(network) -> str:
    """A traffic selector as the VPN 3000 shows it: host address, or address/netmask."""
    if network.prefixlen == 32:
        return str(network.network_address)
    return f"{network.network_address}/{network.netmask}"
