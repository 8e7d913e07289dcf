"""Sans-I/O ESP: RFC 4303 packet codec per SA, anti-replay, RFC 3948 / Cisco UDP encapsulations
and Cisco's "IPsec over TCP" (cTCP) records on a TCP stream.

No sockets, no clock: callers pass bytes and (optionally) the current time.
"""

from labctl.esp.algorithms import (
    CIPHERS,
    INTEGRITIES,
    CipherSpec,
    IntegritySpec,
    cipher_for_ikev1,
    cipher_spec,
    integrity_for_ikev1,
    integrity_spec,
)
from labctl.esp.encap import (
    CISCO_KEEPALIVE,
    CISCO_UDP_DEFAULT_PORT,
    IKE_PORT,
    IPPROTO_ESP,
    NAT_KEEPALIVE,
    NATT_PORT,
    NON_ESP_MARKER,
    NON_IKE_MARKER,
    CiscoUdpFraming,
    Kind,
    NatTraversalFraming,
    NonIkeFraming,
    RawEspFraming,
    framing,
)
from labctl.esp.errors import (
    EspAuthFailed,
    EspBadPadding,
    EspError,
    EspMalformed,
    EspReplay,
    EspSequenceExhausted,
    EspUnknownSpi,
)
from labctl.esp.replay import ReplayWindow
from labctl.esp.sa import (
    NEXT_HEADER_DUMMY,
    NEXT_HEADER_IPV4,
    Direction,
    EspSa,
    spi_of,
)
from labctl.esp.sizes import DEFAULT_TUNNEL_MTU, max_inner_packet
from labctl.esp.spi_table import InboundSpiTable
from labctl.esp.tcp_framing import (
    ESP_TRAILER,
    TCP_DEFAULT_PORT,
    StreamDeframer,
    frame_esp,
    frame_ike,
)

__all__ = [
    "CIPHERS",
    "CISCO_KEEPALIVE",
    "CISCO_UDP_DEFAULT_PORT",
    "DEFAULT_TUNNEL_MTU",
    "ESP_TRAILER",
    "IKE_PORT",
    "INTEGRITIES",
    "IPPROTO_ESP",
    "NATT_PORT",
    "NAT_KEEPALIVE",
    "NEXT_HEADER_DUMMY",
    "NEXT_HEADER_IPV4",
    "NON_ESP_MARKER",
    "NON_IKE_MARKER",
    "TCP_DEFAULT_PORT",
    "CipherSpec",
    "CiscoUdpFraming",
    "Direction",
    "EspAuthFailed",
    "EspBadPadding",
    "EspError",
    "EspMalformed",
    "EspReplay",
    "EspSa",
    "EspSequenceExhausted",
    "EspUnknownSpi",
    "InboundSpiTable",
    "IntegritySpec",
    "Kind",
    "NatTraversalFraming",
    "NonIkeFraming",
    "RawEspFraming",
    "ReplayWindow",
    "StreamDeframer",
    "cipher_for_ikev1",
    "cipher_spec",
    "frame_esp",
    "frame_ike",
    "framing",
    "integrity_for_ikev1",
    "integrity_spec",
    "max_inner_packet",
    "spi_of",
]
