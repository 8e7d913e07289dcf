"""IKE and ESP on one TCP stream: the framing of our "IPsec over TCP" (sans-I/O).

OUR CHOICE, not Cisco's wire format. Cisco's cTCP (VPN 3000 "IPsec over TCP", default
port 10000) is documented only from the outside: Wireshark's ``tcpencap`` dissector
(packet-ipsec-tcp.c, written from VPN 3000 captures) shows one packet per TCP segment --
IKE behind an 8-byte UDP header 500->500, or bare ESP -- followed by a 16-byte trailer
whose meaning is largely unknown ("Unknown trailer", "Magic number", "Magic 2"), and
Cisco's TAC note 113578 says cTCP "is not real TCP" (it never retransmits). Neither
carries a length, so it cannot be read back from a real, coalescing TCP byte stream, and
the trailer's constants are not published. We therefore use the published standard for
IKE/ESP in TCP, RFC 8229 (obsoleted by RFC 9329, same format):

    stream = "IKETCP" record*            the 6-byte prefix, once, from the side that
                                         opened the connection (RFC 8229 section 4)
    record = Length(2, big-endian, counts its own 2 bytes) body      (section 3)
    body   = 00 00 00 00 IKE-message     IKE behind the 4-byte non-ESP marker
           | ESP-packet                  first 4 bytes = SPI, never 0

The Linux kernel's espintcp (net/xfrm/espintcp.c: 2-byte length including itself, marker
0 = IKE) and libreswan (iface_tcp.c: "IKETCP" prefix, no NAT-keepalives on TCP) agree.
tshark 4.0 has no RFC 8229 dissector; ``tools/wireshark/ipsec-tcp.lua`` is ours (see
docs/NOTES.md for the command line).

The deframer never raises on stream input: damage is counted in ``errors`` by a stable
reason key. A record whose length is legal but too big or too small for its content is
skipped (the stream stays in step); a length below 2 or a wrong prefix cannot be
resynchronised, so the deframer sets ``fatal`` and the connection must be closed.
"""

from __future__ import annotations

from labctl.esp.encap import NON_ESP_MARKER, Kind

STREAM_PREFIX = b"IKETCP"
LENGTH_BYTES = 2
MAX_LENGTH_FIELD = 0xFFFF
# Larger records are skipped and counted: a 1400-byte TUN packet makes ~1.5 kB of ESP, our
# IKE messages stay below 2 kB; RFC 8229 section 3 asks to keep records datagram-sized.
DEFAULT_MAX_RECORD = 16384
TCP_DEFAULT_PORT = 10000  # the VPN 3000 / Cisco VPN Client default for IPsec over TCP
ESP_MIN = 8  # SPI + sequence number


def frame_ike(message: bytes | bytearray | memoryview) -> bytes:
    """One IKE message as a record: length, non-ESP marker, message."""
    length = LENGTH_BYTES + 4 + len(message)
    if length > MAX_LENGTH_FIELD:
        raise ValueError(f"IKE message of {len(message)} bytes does not fit a TCP record")
    return length.to_bytes(2, "big") + NON_ESP_MARKER + bytes(message)


def esp_record_header(esp_len: int) -> bytes:
    """The 2-byte length in front of an ESP packet of ``esp_len`` bytes (for scatter I/O)."""
    length = LENGTH_BYTES + esp_len
    if esp_len < ESP_MIN or length > MAX_LENGTH_FIELD:
        raise ValueError(f"ESP packet of {esp_len} bytes cannot be framed (8..65533 bytes)")
    return length.to_bytes(2, "big")


def frame_esp(esp: bytes | bytearray | memoryview) -> bytes:
    """One ESP packet as a record. An SPI of 0 would read back as IKE: refused."""
    if len(esp) >= 4 and bytes(esp[:4]) == NON_ESP_MARKER:
        raise ValueError("ESP packet with SPI 0 would be read as IKE")
    return esp_record_header(len(esp)) + bytes(esp)


class StreamDeframer:
    """Turns the bytes of one direction of a connection back into (Kind, payload) records.

    ``expect_prefix``: this is the accepting side and the stream must open with "IKETCP".
    IKE payloads come without the marker; ESP payloads are whole ESP packets.
    """

    __slots__ = (
        "_buf",
        "_need_prefix",
        "_offset",
        "_skip",
        "bytes_in",
        "errors",
        "fatal",
        "max_record",
        "records",
    )

    def __init__(self, *, expect_prefix: bool, max_record: int = DEFAULT_MAX_RECORD) -> None:
        if not LENGTH_BYTES + ESP_MIN <= max_record <= MAX_LENGTH_FIELD:
            raise ValueError(f"max_record {max_record} outside 10..65535")
        self._buf = bytearray()
        self._need_prefix = expect_prefix
        self._offset = 0  # stream offset of _buf[0], for error messages
        self._skip = 0  # bytes of an oversize record still to discard
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

    def _fail(self, reason: str, message: str) -> None:
        self._count(reason)
        self.fatal = message
        self._buf.clear()

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[tuple[Kind, bytes]]:
        """Records completed by ``chunk`` (possibly none); never raises on stream content."""
        self.bytes_in += len(chunk)
        if self.fatal is not None:
            self._count("after_fatal")
            return []
        data = memoryview(chunk)
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            self._offset += dropped
            data = data[dropped:]
        buf = self._buf
        buf += data
        out: list[tuple[Kind, bytes]] = []
        pos, end = 0, len(buf)
        if self._need_prefix:
            have = min(end, len(STREAM_PREFIX))
            if buf[:have] != STREAM_PREFIX[:have]:
                self._fail(
                    "bad_prefix",
                    f"stream does not start with 'IKETCP' (got {bytes(buf[:have]).hex()})",
                )
                return out
            if have < len(STREAM_PREFIX):
                return out
            pos = len(STREAM_PREFIX)
            self._need_prefix = False
        while end - pos >= LENGTH_BYTES:
            length = (buf[pos] << 8) | buf[pos + 1]
            if length < LENGTH_BYTES:
                self._fail(
                    "bad_length",
                    f"record length {length} at stream offset {self._offset + pos} is"
                    " smaller than the 2-byte length field itself",
                )
                return out
            if length > self.max_record:
                self._count("oversize")
                available = end - pos
                if available >= length:
                    pos += length
                    continue
                self._skip = length - available
                pos = end
                break
            if end - pos < length:
                break
            body = pos + LENGTH_BYTES
            pos += length
            size = length - LENGTH_BYTES
            if size < 4:
                self._count("short_record")
            elif buf[body : body + 4] == NON_ESP_MARKER:
                if size == 4:
                    self._count("empty_ike")
                else:
                    out.append((Kind.IKE, bytes(buf[body + 4 : pos])))
            elif size < ESP_MIN:
                self._count("short_esp")
            else:
                out.append((Kind.ESP, bytes(buf[body:pos])))
        if pos:
            del buf[:pos]
            self._offset += pos
        self.records += len(out)
        return out

    def stats(self) -> dict[str, object]:
        return {
            "records": self.records,
            "bytes_in": self.bytes_in,
            "buffered": len(self._buf),
            "errors": dict(self.errors),
            "fatal": self.fatal,
        }
