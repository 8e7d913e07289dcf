"""From the engine's ChildSaEstablished to what the data plane installs."""

from __future__ import annotations

from ..esp import EspSa
from ..ike import ChildSaEstablished
from .dataplane import Encap


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
    """The data-plane socket for the child's encapsulation (both NAT-T numbers: NATT; NAT-T
    drafts 00/01: the IKE socket; TCP: the session's connection). A value the engine never
    sends is a ValueError."""
    return Encap(event.encapsulation).transport
