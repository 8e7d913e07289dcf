"""IKE and ESP on one TCP connection: Cisco's "IPsec over TCP" (cTCP) records, sans-I/O.

The record format, as two independent sources describe it byte for byte:

    record  = payload trailer
    payload = UDP header (500 -> 500, length, checksum 0) + IKE message     (IKE)
            | ESP packet                                                   (ESP)
    trailer = 00 00 00 00 | seq (2) | flags (2) | 21 45 6C 69 10 | protocol | 01 00
              protocol 0x11 (the UDP-wrapped IKE) or 0x32 (ESP); 16 bytes

- Wireshark's ``tcpencap`` dissector (epan/dissectors/packet-ipsec-tcp.c, "TCP
  Encapsulation of IPsec Packets as supported by the cisco vpn3000 concentrator series",
  written from captures): payload then a 16-byte trailer of zeros, a sequence number, an
  IKE direction field (0x4000 client to server, 0 server to client; ESP 0), a 5-byte
  "magic", the protocol byte (0x11 ISAKMP / 0x32 ESP) and a 2-byte "magic 2"; IKE
  recognised by UDP ports 500/500 in front.
- QuickSec (INSIDE Secure), engine_tcp_encaps.c, which interoperates with the Cisco VPN
  Client: trailer = 0, IKE "trailer seq" (the IKE packet's IP ID; 0 for ESP), 0, cookie
  21 45 6C 69, 0x10, next header, 0x01, 0x00; the UDP checksum of IKE is zeroed "to
  interoperate with Cisco VPN client".

What we do differently, and why: cTCP "is not real TCP" (Cisco TAC note 113578): one
record per segment, hand-made segments, no retransmission. We carry the same records on a
real kernel TCP connection. The sender writes each record with its own send (TCP_NODELAY,
MSG_EOR), so on an unloaded path every record is one segment, as cTCP peers and
Wireshark's ``tcpencap`` expect; the receiver below does not rely on that: it finds each
record's end by its trailer (11 fixed bytes), so coalesced, split or retransmitted
segments are read correctly. The IKE ``seq`` counts IKE records per connection; flags are
0x4000 on IKE from the client (as Wireshark saw), else 0. Receivers ignore both (QuickSec
does too).

The deframer never raises on stream input: damage is counted in ``errors`` by a stable
reason key and the record is dropped; only a stream with no trailer within ``max_record``
bytes (not cTCP, or a record too large) sets ``fatal``: the connection must be closed.
"""

from __future__ import annotations

import struct

from labctl.esp.encap import IKE_PORT, NON_ESP_MARKER, Kind

TRAILER_LEN = 16
MAGIC = b"\x21\x45\x6c\x69\x10"  # trailer bytes 8..12: QuickSec's cookie and the 0x10
TRAILER_TAIL = b"\x01\x00"  # trailer bytes 14..15
PROTO_IKE_UDP, PROTO_ESP, PROTO_AH = 0x11, 0x32, 0x33
FLAG_CLIENT_TO_SERVER = 0x4000  # Wireshark: "ISAKMP traffic direction: Client to server"
UDP_HEADER_LEN = 8
IKE_HEADER_LEN = 28
ESP_MIN = 8  # SPI + sequence number
MAX_UDP_PAYLOAD = 0xFFFF - UDP_HEADER_LEN
# A 1400-byte tunnel packet makes ~1.45 kB of ESP; our IKE stays below 2 kB.
DEFAULT_MAX_RECORD = 16384
TCP_DEFAULT_PORT = 10000  # the VPN 3000 / Cisco VPN Client default for IPsec over TCP
_MIN_PAYLOAD = ESP_MIN


def _trailer(seq: int, flags: int, protocol: int) -> bytes:
    return bytes(4) + struct.pack("!HH", seq & 0xFFFF, flags) + MAGIC + bytes([protocol])


ESP_TRAILER = _trailer(0, 0, PROTO_ESP) + TRAILER_TAIL


def ike_trailer(seq: int, from_client: bool) -> bytes:
    flags = FLAG_CLIENT_TO_SERVER if from_client else 0
    return _trailer(seq, flags, PROTO_IKE_UDP) + TRAILER_TAIL


def frame_ike(
    message: bytes | bytearray | memoryview, *, seq: int = 0, from_client: bool = False
) -> bytes:
    """One IKE message as a record: UDP header 500 -> 500 (checksum 0), message, trailer."""
    if len(message) > MAX_UDP_PAYLOAD:
        raise ValueError(f"IKE message of {len(message)} bytes does not fit a UDP header")
    udp = struct.pack("!HHHH", IKE_PORT, IKE_PORT, UDP_HEADER_LEN + len(message), 0)
    return udp + bytes(message) + ike_trailer(seq, from_client)


def frame_esp(esp: bytes | bytearray | memoryview) -> bytes:
    """One ESP packet as a record (the trailer is constant: ``ESP_TRAILER``)."""
    if len(esp) < ESP_MIN or bytes(esp[:4]) == NON_ESP_MARKER:
        raise ValueError(f"ESP packet of {len(esp)} bytes (SPI 0 or too short) cannot be framed")
    return bytes(esp) + ESP_TRAILER


class StreamDeframer:
    """Turns the bytes of one direction of a connection back into (Kind, payload) records.

    IKE payloads come without their UDP header; ESP payloads are whole ESP packets.
    """

    __slots__ = (
        "_buf",
        "_offset",
        "_resume",
        "bytes_in",
        "errors",
        "fatal",
        "max_record",
        "records",
    )

    def __init__(self, *, max_record: int = DEFAULT_MAX_RECORD) -> None:
        if not ESP_MIN <= max_record <= 0xFFFF:
            raise ValueError(f"max_record {max_record} outside 8..65535")
        self._buf = bytearray()
        self._offset = 0  # stream offset of _buf[0], for error messages
        self._resume = 0  # where to go on looking for a trailer (relative to _buf)
        self.max_record = max_record
        self.errors: dict[str, int] = {}
        self.fatal: str | None = None
        self.records = 0
        self.bytes_in = 0

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for the rest of a record (bounded by ``max_record``)."""
        return len(self._buf)

    def _count(self, reason: str) -> None:
        self.errors[reason] = self.errors.get(reason, 0) + 1

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[tuple[Kind, bytes]]:
        """Records completed by ``chunk`` (possibly none); never raises on stream content."""
        self.bytes_in += len(chunk)
        if self.fatal is not None:
            self._count("after_fatal")
            return []
        buf = self._buf
        buf += chunk
        out: list[tuple[Kind, bytes]] = []
        pos, end = 0, len(buf)
        search = self._resume
        while True:
            # the magic sits 8 bytes into the trailer, after a payload of >= 8 bytes
            m = buf.find(MAGIC, max(search, pos + _MIN_PAYLOAD + 8))
            if m < 0 or m + 8 > end:
                if end - pos > self.max_record + TRAILER_LEN:
                    self._count("oversize")
                    self.fatal = (
                        f"no cTCP trailer within {self.max_record + TRAILER_LEN} bytes after"
                        f" stream offset {self._offset + pos} (not IPsec over TCP, or a"
                        " record too large)"
                    )
                    buf.clear()
                    return out
                search = m if m >= 0 else max(pos, end - len(MAGIC) + 1)
                break
            start = m - 8  # the trailer
            if (
                buf[start : start + 4] != b"\0\0\0\0"
                or buf[start + 6] & 0x0F
                or buf[start + 7]
                or buf[m + 6 : m + 8] != TRAILER_TAIL
                or buf[m + 5] not in (PROTO_IKE_UDP, PROTO_ESP, PROTO_AH)
            ):
                search = m + 1  # those bytes belong to a payload: look further
                continue
            protocol = buf[m + 5]
            payload = bytes(buf[pos:start])
            pos = search = m + 8
            if len(payload) > self.max_record:
                self._count("oversize_record")
            elif protocol == PROTO_ESP:
                if payload[:4] == NON_ESP_MARKER:
                    self._count("esp_spi_zero")
                else:
                    out.append((Kind.ESP, payload))
            elif protocol == PROTO_IKE_UDP:
                self._ike(payload, out)
            else:
                self._count("ah_unsupported")
        if pos:
            del buf[:pos]
            self._offset += pos
        self._resume = max(0, search - pos)
        self.records += len(out)
        return out

    def _ike(self, payload: bytes, out: list[tuple[Kind, bytes]]) -> None:
        if len(payload) < UDP_HEADER_LEN + IKE_HEADER_LEN:
            self._count("short_ike")
            return
        sport, dport, length = struct.unpack_from("!HHH", payload)
        if length != len(payload):
            self._count("bad_udp_length")
        elif (sport, dport) != (IKE_PORT, IKE_PORT):
            self._count("not_ike_ports")
        else:
            out.append((Kind.IKE, payload[UDP_HEADER_LEN:]))

    def stats(self) -> dict[str, object]:
        return {
            "records": self.records,
            "bytes_in": self.bytes_in,
            "buffered": len(self._buf),
            "errors": dict(self.errors),
            "fatal": self.fatal,
        }
