"""Tunnel MTU arithmetic: how big an inner packet may be so the outer one fits a link."""

from __future__ import annotations

from labctl.esp.algorithms import CipherSpec, IntegritySpec, cipher_spec, integrity_spec
from labctl.esp.encap import IPV4_HEADER_MIN, UDP_HEADER_LEN
from labctl.esp.sa import ESP_HEADER_LEN


def max_inner_packet(
    link_mtu: int, cipher: str | CipherSpec, integrity: str | IntegritySpec, udp: bool = True
) -> int:
    """Largest inner packet whose ESP (+UDP) + outer IPv4 packet is <= ``link_mtu``.

    The encrypted part (payload + pad + 2 trailer bytes) is rounded up to the cipher's
    alignment, so the answer is ``floor(room / align) * align - 2``.
    """
    c, i = cipher_spec(cipher), integrity_spec(integrity)
    room = link_mtu - IPV4_HEADER_MIN - (UDP_HEADER_LEN if udp else 0)
    room -= ESP_HEADER_LEN + c.iv_len + i.icv_len
    if room <= c.alignment:
        raise ValueError(f"link MTU {link_mtu} leaves no room for an inner packet")
    return room // c.alignment * c.alignment - 2


# Safe for every supported transform on a 1500-byte link (worst: AES + SHA2-256 over UDP
# gives 1422), and a round number operators recognise.
DEFAULT_TUNNEL_MTU = 1400
