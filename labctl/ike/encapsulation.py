"""How a child SA's ESP travels: one type for the engine and the agent's data plane.

The engine reports it in :class:`~labctl.ike.events.ChildSaEstablished` (what quick mode
negotiated); the agent's data plane keys its sockets and tunnels by the same members. The
data plane's own words for them ("esp", "udp-natt", "udp-cisco": ``vpn stats``, test
configurations) are aliases and :attr:`Encapsulation.socket_name`; any other value is an
error, never quietly plain ESP.
"""

from __future__ import annotations

from enum import StrEnum

from .constants import EncapMode, NotifyType
from .errors import IkeProtocolError


class Encapsulation(StrEnum):
    TUNNEL = "tunnel"  # plain ESP, IP protocol 50 (quick-mode encapsulation 1)
    UDP_TUNNEL = "udp-tunnel"  # RFC 3948 on the NAT-T port (3)
    UDP_TUNNEL_DRAFT = "udp-tunnel-draft"  # the same, NAT-T drafts' number (61443)
    CISCO_UDP = "cisco-udp"  # Cisco IPsec over UDP on a configured port (1 on the wire)
    TCP = "tcp"  # IPsec over TCP: the session's connection (1 on the wire)
    # NAT-T drafts 00/01: UDP on the IKE port, 8-byte zero non-IKE marker (61443 on the
    # wire); the data plane sends it on the IKE socket and takes it from there.
    UDP_NON_IKE = "udp-non-ike"
    # The data plane's names for the same members (its sockets).
    ESP = "tunnel"
    NATT = "udp-tunnel"
    CISCO = "cisco-udp"

    @property
    def transport(self) -> Encapsulation:
        """The member whose socket carries it: both NAT-T numbers ride the NAT-T socket."""
        return Encapsulation.UDP_TUNNEL if self is Encapsulation.UDP_TUNNEL_DRAFT else self

    @property
    def socket_name(self) -> str:
        """The data plane's name of its socket ("esp", "udp-natt", "udp-cisco", "tcp")."""
        return _SOCKET_NAMES[self.transport]

    @classmethod
    def _missing_(cls, value: object) -> Encapsulation | None:
        for member, name in _SOCKET_NAMES.items():
            if value == name:
                return member
        return None  # Enum raises ValueError naming the value

    @staticmethod
    def negotiated(
        mode: int, *, tcp: bool, cisco_udp: bool, non_ike: bool = False
    ) -> Encapsulation:
        """What a quick mode's encapsulation attribute means on this SA: mode 1 is plain ESP
        unless the session rides IPsec over TCP or Cisco's IPsec over UDP; 61443 on an SA
        that speaks NAT-T draft 00/01 (``non_ike``) is ESP on the IKE port."""
        if mode == EncapMode.TUNNEL:
            if tcp:
                return Encapsulation.TCP
            return Encapsulation.CISCO_UDP if cisco_udp else Encapsulation.TUNNEL
        if mode == EncapMode.UDP_TUNNEL:
            return Encapsulation.UDP_TUNNEL
        if mode == EncapMode.UDP_TUNNEL_DRAFT:
            return Encapsulation.UDP_NON_IKE if non_ike else Encapsulation.UDP_TUNNEL_DRAFT
        raise IkeProtocolError(
            f"ESP encapsulation mode {mode} is not supported", notify=NotifyType.NO_PROPOSAL_CHOSEN
        )


_SOCKET_NAMES = {
    Encapsulation.TUNNEL: "esp",  # raw IP protocol 50
    Encapsulation.UDP_TUNNEL: "udp-natt",  # RFC 3948, port 4500
    Encapsulation.UDP_NON_IKE: "udp-non-ike",  # NAT-T drafts 00/01, on the IKE port (500)
    Encapsulation.CISCO_UDP: "udp-cisco",  # Cisco IPsec over UDP, port 10000 by default
    Encapsulation.TCP: "tcp",  # one connection per tunnel (labctl.agent.tcp_transport)
}
