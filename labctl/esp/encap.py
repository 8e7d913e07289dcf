"""How ESP (and IKE) ride on the wire: raw IP protocol 50, RFC 3948 UDP, Cisco UDP (TCP:
see :mod:`labctl.esp.tcp_framing`).

Pure functions and small immutable "framing" objects; no sockets.

Framing abstraction (chosen so a stream transport can be added without touching callers):

- A *datagram framing* classifies one received datagram with ``demux(datagram) -> (Kind,
  offset)`` where ``offset`` is where the ESP/IKE payload starts inside the datagram (no
  copy on the hot path), and builds outgoing datagrams with ``frame_esp`` / ``frame_ike`` /
  ``keepalive()``.
- The *stream framing* for "IPsec over TCP" lives in :mod:`labctl.esp.tcp_framing`:
  ``frame_ike`` / ``frame_esp`` builders plus a stateful ``StreamDeframer.feed(chunk) ->
  list[(Kind, bytes)]`` that buffers partial records. Its format is Cisco's cTCP record
  (payload + 16-byte trailer; IKE behind a UDP header 500 -> 500), established from
  Wireshark's ``tcpencap`` dissector and QuickSec's Cisco-interoperable implementation;
  we carry it on a real TCP connection and find records by their trailers. See that
  module's docstring for the sources and what differs from Cisco's "not real TCP".

Facts: NAT-T drafts 00/01 (draft-ietf-ipsec-udp-encaps-00/01 with draft-ietf-ipsec-nat-t-
ike-00/01; Linux's UDP_ENCAP_ESPINUDP_NON_IKE, racoon): IKE never floats, ESP rides UDP on
the IKE port (500) behind an 8-byte zero non-IKE marker -- IKE's initiator cookie is never
zero, so the marker tells them apart; a NAT-keepalive is one 0xFF byte. Linux takes a
datagram as marked ESP only when it is longer than marker + ESP header (16 bytes), and hands
everything else that is not a keepalive to the IKE socket. RFC 3948 §2 (non-ESP marker = 4
zero bytes in front of IKE on port 4500; an ESP SPI is never 0; NAT-keepalive = one 0xFF
byte), Cisco IPsec-over-UDP (ESP directly in UDP, no marker, default port 10000, IKE stays
on 500; vpnc sends ``00 00 00 00 FF`` keepalives)."""

from __future__ import annotations

from enum import IntEnum

from labctl.esp.errors import EspMalformed

IKE_PORT = 500
NATT_PORT = 4500
CISCO_UDP_DEFAULT_PORT = 10000
IPPROTO_ESP = 50

NON_ESP_MARKER = b"\x00\x00\x00\x00"
NON_IKE_MARKER = bytes(8)  # NAT-T drafts 00/01: in front of ESP on the IKE port
ESP_HEADER_LEN = 8  # SPI + sequence number
NAT_KEEPALIVE = b"\xff"
CISCO_KEEPALIVE = b"\x00\x00\x00\x00\xff"  # what vpnc sends on the Cisco UDP port

IPV4_HEADER_MIN = 20
UDP_HEADER_LEN = 8


class Kind(IntEnum):
    ESP = 1
    IKE = 2
    KEEPALIVE = 3


class NatTraversalFraming:
    """RFC 3948 UDP encapsulation on port 4500, shared with IKE behind a non-ESP marker."""

    name = "udp-natt"
    udp = True
    default_port = NATT_PORT
    overhead = UDP_HEADER_LEN

    @staticmethod
    def demux(datagram: bytes | bytearray | memoryview) -> tuple[Kind, int]:
        n = len(datagram)
        if n >= 8 and datagram[0:4] != NON_ESP_MARKER:
            return Kind.ESP, 0
        if n == 1 and datagram[0] == 0xFF:
            return Kind.KEEPALIVE, 0
        if n > 4 and datagram[0:4] == NON_ESP_MARKER:
            return Kind.IKE, 4
        raise EspMalformed(
            f"UDP-4500 datagram of {n} bytes is neither ESP (>= 8 bytes, SPI != 0),"
            " IKE (non-ESP marker + message) nor a NAT-keepalive (0xFF)"
        )

    @staticmethod
    def frame_esp(esp: bytes | bytearray) -> bytes | bytearray:
        return esp

    @staticmethod
    def frame_ike(ike: bytes | bytearray) -> bytes:
        return NON_ESP_MARKER + ike

    @staticmethod
    def keepalive() -> bytes:
        return NAT_KEEPALIVE


class NonIkeFraming:
    """NAT-T drafts 00/01: ESP in UDP on the IKE port behind the 8-byte zero non-IKE marker.

    The port is IKE's own: ``demux`` says IKE for anything not marked (the engine judges
    it), ESP (payload after the marker) for a marked datagram with room for an ESP header,
    KEEPALIVE for one 0xFF byte; a marker with less than an ESP header behind it is
    malformed (neither IKE nor ESP can start with 8 zero bytes and be that short)."""

    name = "udp-non-ike"
    udp = True
    default_port = IKE_PORT
    overhead = UDP_HEADER_LEN + len(NON_IKE_MARKER)

    @staticmethod
    def demux(datagram: bytes | bytearray | memoryview) -> tuple[Kind, int]:
        n = len(datagram)
        if n >= 8 and datagram[0:8] == NON_IKE_MARKER:
            if n >= 8 + ESP_HEADER_LEN:
                return Kind.ESP, 8
            raise EspMalformed(
                f"UDP-500 datagram of {n} bytes has the non-IKE marker but no room for an"
                f" ESP header ({8 + ESP_HEADER_LEN} bytes at least)"
            )
        if n == 1 and datagram[0] == 0xFF:
            return Kind.KEEPALIVE, 0
        return Kind.IKE, 0

    @staticmethod
    def frame_esp(esp: bytes | bytearray) -> bytes | bytearray:
        return NON_IKE_MARKER + esp

    @staticmethod
    def frame_ike(ike: bytes | bytearray) -> bytes:
        return bytes(ike)  # IKE on port 500 carries no marker

    @staticmethod
    def keepalive() -> bytes:
        return NAT_KEEPALIVE


class CiscoUdpFraming:
    """Cisco "IPsec over UDP": ESP in UDP (default port 10000), no marker, no IKE."""

    name = "udp-cisco"
    udp = True
    default_port = CISCO_UDP_DEFAULT_PORT
    overhead = UDP_HEADER_LEN

    @staticmethod
    def demux(datagram: bytes | bytearray | memoryview) -> tuple[Kind, int]:
        n = len(datagram)
        if n >= 8 and datagram[0:4] != NON_ESP_MARKER:
            return Kind.ESP, 0
        if (n == 1 and datagram[0] == 0xFF) or datagram == CISCO_KEEPALIVE:
            return Kind.KEEPALIVE, 0
        raise EspMalformed(
            f"Cisco-UDP datagram of {n} bytes is neither ESP (>= 8 bytes, SPI != 0) nor a"
            " keepalive (FF or 00000000FF)"
        )

    @staticmethod
    def frame_esp(esp: bytes | bytearray) -> bytes | bytearray:
        return esp

    @staticmethod
    def frame_ike(ike: bytes | bytearray) -> bytes:
        raise ValueError("IKE does not travel on the Cisco IPsec-over-UDP port (it stays on 500)")

    @staticmethod
    def keepalive() -> bytes:
        return CISCO_KEEPALIVE


class RawEspFraming:
    """Plain ESP as IP protocol 50. Received via a raw socket, so the IPv4 header is present."""

    name = "esp"
    udp = False
    default_port = 0
    overhead = 0

    @staticmethod
    def demux(datagram: bytes | bytearray | memoryview) -> tuple[Kind, int]:
        return Kind.ESP, ipv4_payload_offset(datagram, IPPROTO_ESP)

    @staticmethod
    def frame_esp(esp: bytes | bytearray) -> bytes | bytearray:
        return esp

    @staticmethod
    def frame_ike(ike: bytes | bytearray) -> bytes:
        raise ValueError("IKE does not travel inside raw ESP")

    @staticmethod
    def keepalive() -> bytes:
        raise ValueError("raw ESP has no keepalive (no NAT mapping to hold open)")


Framing = NatTraversalFraming | NonIkeFraming | CiscoUdpFraming | RawEspFraming
FramingType = (
    type[NatTraversalFraming] | type[NonIkeFraming] | type[CiscoUdpFraming] | type[RawEspFraming]
)
FRAMINGS: dict[str, FramingType] = {
    f.name: f for f in (NatTraversalFraming, NonIkeFraming, CiscoUdpFraming, RawEspFraming)
}


def framing(name: str) -> FramingType:
    try:
        return FRAMINGS[name]
    except KeyError:
        known = ", ".join(FRAMINGS)
        raise ValueError(f"unknown ESP encapsulation {name!r}; known: {known}") from None


def ipv4_payload_offset(packet: bytes | bytearray | memoryview, protocol: int) -> int:
    """Offset of the payload of an IPv4 packet carrying ``protocol``; EspMalformed otherwise."""
    n = len(packet)
    if n < IPV4_HEADER_MIN:
        raise EspMalformed(f"IPv4 packet of {n} bytes is shorter than a 20-byte header")
    first = packet[0]
    if first >> 4 != 4:
        raise EspMalformed(f"IP version {first >> 4} at offset 0, expected 4")
    ihl = (first & 0x0F) * 4
    if ihl < IPV4_HEADER_MIN or ihl > n:
        raise EspMalformed(f"IPv4 header length {ihl} at offset 0 is invalid for {n} bytes")
    if packet[9] != protocol:
        raise EspMalformed(f"IPv4 protocol {packet[9]} at offset 9, expected {protocol}")
    return ihl
