"""From the engine's ChildSaEstablished to what the data plane installs."""

from __future__ import annotations

from ..esp import EspSa
from ..ike import ChildSaEstablished
from .dataplane import Encap

# The engine's quick-mode encapsulation -> the data plane's socket for it.
ENCAPS = {
    "tunnel": Encap.ESP,
    "udp-tunnel": Encap.NATT,
    "udp-tunnel-draft": Encap.NATT,
    "cisco-udp": Encap.CISCO,
    "tcp": Encap.TCP,  # IPsec over TCP: the session's connection (tcp_transport)
}


def esp_pair(event: ChildSaEstablished, now: float) -> tuple[EspSa, EspSa]:
    """(inbound, outbound) ESP SAs with the keys the quick mode derived."""
    inbound = EspSa.inbound(
        event.inbound_spi,
        event.encryption,
        event.integrity,
        event.enc_key_in,
        event.auth_key_in,
        created_at=now,
    )
    outbound = EspSa.outbound(
        event.outbound_spi,
        event.encryption,
        event.integrity,
        event.enc_key_out,
        event.auth_key_out,
        created_at=now,
    )
    return inbound, outbound


def encap_of(event: ChildSaEstablished) -> Encap:
    return ENCAPS.get(event.encapsulation, Encap.ESP)
