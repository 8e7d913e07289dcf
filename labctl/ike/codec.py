"""ISAKMP (RFC 2408) message and payload codec, with the NAT-T payloads of RFC 3947.

The encoder writes the canonical form.  The decoder is liberal where deployed
implementations differ and the meaning stays unambiguous, and strict everywhere else:

* tolerated: 1..3 zero bytes of padding after the last data attribute of a transform, an
  attribute payload (Mode-Config / XAUTH) or notify data (a gateway that pads its
  Mode-Config reply to a multiple of 4); numbers of any width in variable-length attributes
  (lifetimes in 1..8+ bytes, leading zeros); unknown payload types after the last known one
  (kept as :class:`RawPayload`); trailing bytes after the last payload of a decrypted body
  (the encryption padding);
* refused with :class:`IkeDecodeError`: lengths that run past their enclosing structure,
  non-zero reserved fields, counts that do not add up, non-zero bytes after the last
  attribute, any other trailing bytes.

So ``decode(encode(x)) == x`` for every value the encoder accepts, and for every byte string
the decoder accepts, ``decode(encode(decode(b))) == decode(b)``: the re-encoded message means
the same (the tolerated padding is not kept).  Hashes are computed over the bytes as received
(:attr:`Message.raw`, :meth:`Message.raw_payload`), never over a re-encoding.  Every problem
raises :class:`IkeDecodeError` with the offset of the offending byte, counted from the start
of the buffer the caller passed in (or from ``base_offset`` when the caller decodes a slice
of a bigger buffer), and the payload type being decoded there.

The codec knows nothing about encryption: an encrypted message is a header plus ciphertext
(:class:`EncryptedMessage`); the security-association layer decrypts it and calls
:func:`decode_chain` on the plaintext.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar, Union

from .constants import (
    DOI_IPSEC,
    HEADER_LEN,
    ISAKMP_VERSION,
    SIT_IDENTITY_ONLY,
    Flag,
    IdType,
    NotifyType,
    PayloadType,
)
from .errors import IkeDecodeError

_HDR = struct.Struct("!8s8sBBBBII")
_GEN = struct.Struct("!BBH")

# ---------------------------------------------------------------------------------------------
# Data attributes (RFC 2408 section 3.3)


@dataclass(frozen=True)
class Attribute:
    """One data attribute.  An ``int`` value is sent in the short TV form (0..65535), a
    ``bytes`` value in the variable TLV form; the decoder gives back the same form it read."""

    type: int
    value: int | bytes

    def __post_init__(self) -> None:
        if not 0 <= self.type <= 0x7FFF:
            raise ValueError(f"attribute type {self.type} out of range 0..32767")
        if isinstance(self.value, int):
            if not 0 <= self.value <= 0xFFFF:
                raise ValueError(
                    f"attribute {self.type}: TV value {self.value} out of range; use bytes (TLV)"
                )
        elif isinstance(self.value, bytes):
            if len(self.value) > 0xFFFF:
                raise ValueError(f"attribute {self.type}: TLV value longer than 65535 bytes")
        else:
            raise TypeError(f"attribute {self.type}: value must be int or bytes")

    @property
    def is_tv(self) -> bool:
        return isinstance(self.value, int)

    def as_int(self) -> int:
        """Numeric value of a TV attribute or of a TLV attribute of any width (big-endian;
        leading zero bytes are fine: some implementations send lifetimes in 8 bytes)."""
        if isinstance(self.value, int):
            return self.value
        if not self.value:
            raise ValueError(f"attribute {self.type}: empty value is not a number")
        return int.from_bytes(self.value, "big")

    @staticmethod
    def number(attr_type: int, value: int) -> Attribute:
        """TV when the value fits in 16 bits, otherwise a TLV of 4 bytes (e.g. lifetimes),
        or as many as the value needs."""
        if 0 <= value <= 0xFFFF:
            return Attribute(attr_type, value)
        return Attribute(attr_type, value.to_bytes(max(4, (value.bit_length() + 7) // 8), "big"))

    def encode(self) -> bytes:
        if isinstance(self.value, int):
            return struct.pack("!HH", self.type | 0x8000, self.value)
        return struct.pack("!HH", self.type, len(self.value)) + self.value


def encode_attributes(attributes: Iterable[Attribute]) -> bytes:
    return b"".join(a.encode() for a in attributes)


def decode_attributes(data: bytes, base_offset: int = 0) -> tuple[Attribute, ...]:
    """Data attributes filling ``data``; 1..3 zero bytes after the last one are padding."""
    attrs: list[Attribute] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 4:
            if not any(data[pos:]):
                break  # zero padding shorter than an attribute header (deployed gateways)
            raise IkeDecodeError(
                base_offset + pos,
                f"attribute header truncated ({len(data) - pos} bytes left, not zero padding)",
            )
        raw_type, value = struct.unpack_from("!HH", data, pos)
        if raw_type & 0x8000:
            attrs.append(Attribute(raw_type & 0x7FFF, value))
            pos += 4
        else:
            end = pos + 4 + value
            if end > len(data):
                raise IkeDecodeError(
                    base_offset + pos,
                    f"attribute {raw_type}: length {value} runs past the end "
                    f"({len(data) - pos - 4} bytes left)",
                )
            attrs.append(Attribute(raw_type, bytes(data[pos + 4 : end])))
            pos = end
    return tuple(attrs)


# ---------------------------------------------------------------------------------------------
# SA / proposal / transform (RFC 2408 sections 3.4-3.6)


@dataclass(frozen=True)
class Transform:
    number: int
    transform_id: int
    attributes: tuple[Attribute, ...] = ()

    def attr(self, attr_type: int) -> Attribute | None:
        for a in self.attributes:
            if a.type == attr_type:
                return a
        return None

    def encode(self, last: bool) -> bytes:
        body = struct.pack("!BBH", self.number, self.transform_id, 0)
        body += encode_attributes(self.attributes)
        return _GEN.pack(0 if last else PayloadType.TRANSFORM, 0, 4 + len(body)) + body


@dataclass(frozen=True)
class Proposal:
    number: int
    protocol: int
    spi: bytes = b""
    transforms: tuple[Transform, ...] = ()

    def encode(self, last: bool) -> bytes:
        if len(self.transforms) > 255 or len(self.spi) > 255:
            raise ValueError("proposal has more than 255 transforms or SPI bytes")
        body = struct.pack("!BBBB", self.number, self.protocol, len(self.spi), len(self.transforms))
        body += self.spi
        n = len(self.transforms)
        body += b"".join(t.encode(i == n - 1) for i, t in enumerate(self.transforms))
        return _GEN.pack(0 if last else PayloadType.PROPOSAL, 0, 4 + len(body)) + body


@dataclass(frozen=True)
class SaPayload:
    payload_type: ClassVar[int] = PayloadType.SA
    proposals: tuple[Proposal, ...]
    doi: int = DOI_IPSEC
    situation: int = SIT_IDENTITY_ONLY

    def encode_body(self) -> bytes:
        n = len(self.proposals)
        return struct.pack("!II", self.doi, self.situation) + b"".join(
            p.encode(i == n - 1) for i, p in enumerate(self.proposals)
        )


def _decode_transform(data: bytes, pos: int, end: int, base: int) -> tuple[Transform, int, int]:
    if end - pos < 8:
        raise IkeDecodeError(base + pos, "transform shorter than 8 bytes")
    nxt, reserved, length = _GEN.unpack_from(data, pos)
    if reserved:
        raise IkeDecodeError(base + pos + 1, "transform: reserved byte not zero")
    if nxt not in (0, PayloadType.TRANSFORM):
        raise IkeDecodeError(base + pos, f"transform: next payload {nxt} is not 0 or 3")
    if length < 8 or pos + length > end:
        raise IkeDecodeError(base + pos + 2, f"transform: bad length {length}")
    number, tid, reserved2 = struct.unpack_from("!BBH", data, pos + 4)
    if reserved2:
        raise IkeDecodeError(base + pos + 6, "transform: reserved field not zero")
    attrs = decode_attributes(data[pos + 8 : pos + length], base + pos + 8)
    return Transform(number, tid, attrs), pos + length, nxt


def _decode_proposal(data: bytes, pos: int, end: int, base: int) -> tuple[Proposal, int, int]:
    if end - pos < 8:
        raise IkeDecodeError(base + pos, "proposal shorter than 8 bytes")
    nxt, reserved, length = _GEN.unpack_from(data, pos)
    if reserved:
        raise IkeDecodeError(base + pos + 1, "proposal: reserved byte not zero")
    if nxt not in (0, PayloadType.PROPOSAL):
        raise IkeDecodeError(base + pos, f"proposal: next payload {nxt} is not 0 or 2")
    if length < 8 or pos + length > end:
        raise IkeDecodeError(base + pos + 2, f"proposal: bad length {length}")
    number, protocol, spi_size, count = struct.unpack_from("!BBBB", data, pos + 4)
    spi_end = pos + 8 + spi_size
    pend = pos + length
    if spi_end > pend:
        raise IkeDecodeError(base + pos + 6, f"proposal: SPI size {spi_size} exceeds payload")
    spi = bytes(data[pos + 8 : spi_end])
    transforms: list[Transform] = []
    tpos = spi_end
    more = count > 0
    while more:
        t, tpos, tnext = _decode_transform(data, tpos, pend, base)
        transforms.append(t)
        more = tnext == PayloadType.TRANSFORM
        if more and tpos >= pend:
            raise IkeDecodeError(base + tpos, "proposal: transform chain runs past the end")
    if len(transforms) != count:
        raise IkeDecodeError(
            base + pos + 7,
            f"proposal: header says {count} transforms, found {len(transforms)}",
            notify=NotifyType.BAD_PROPOSAL_SYNTAX,
        )
    if tpos != pend:
        raise IkeDecodeError(base + tpos, f"proposal: {pend - tpos} unexplained bytes at the end")
    return Proposal(number, protocol, spi, tuple(transforms)), pend, nxt


def _decode_sa(body: bytes, base: int) -> SaPayload:
    if len(body) < 8:
        raise IkeDecodeError(base, "SA payload shorter than DOI + situation")
    doi, situation = struct.unpack_from("!II", body, 0)
    proposals: list[Proposal] = []
    pos = 8
    while pos < len(body):
        p, pos, nxt = _decode_proposal(body, pos, len(body), base)
        proposals.append(p)
        if nxt == 0 and pos != len(body):
            raise IkeDecodeError(base + pos, f"SA: {len(body) - pos} bytes after the last proposal")
        if nxt == PayloadType.PROPOSAL and pos >= len(body):
            raise IkeDecodeError(base + pos, "SA: proposal chain runs past the end")
    return SaPayload(tuple(proposals), doi, situation)


# ---------------------------------------------------------------------------------------------
# Simple payloads


@dataclass(frozen=True)
class _OpaquePayload:
    """A payload whose whole body is opaque bytes (KE, HASH, SIG, NONCE, VID)."""

    data: bytes

    def encode_body(self) -> bytes:
        return self.data


@dataclass(frozen=True)
class KePayload(_OpaquePayload):
    payload_type: ClassVar[int] = PayloadType.KE


@dataclass(frozen=True)
class HashPayload(_OpaquePayload):
    payload_type: ClassVar[int] = PayloadType.HASH


@dataclass(frozen=True)
class SigPayload(_OpaquePayload):
    payload_type: ClassVar[int] = PayloadType.SIG


@dataclass(frozen=True)
class NoncePayload(_OpaquePayload):
    payload_type: ClassVar[int] = PayloadType.NONCE


@dataclass(frozen=True)
class VendorIdPayload(_OpaquePayload):
    payload_type: ClassVar[int] = PayloadType.VID


@dataclass(frozen=True)
class CertPayload:
    payload_type: ClassVar[int] = PayloadType.CERT
    encoding: int
    data: bytes

    def encode_body(self) -> bytes:
        return bytes([self.encoding]) + self.data


@dataclass(frozen=True)
class CertRequestPayload:
    payload_type: ClassVar[int] = PayloadType.CR
    encoding: int
    data: bytes

    def encode_body(self) -> bytes:
        return bytes([self.encoding]) + self.data


@dataclass(frozen=True)
class IdPayload:
    """Identification payload (RFC 2407 section 4.6.2)."""

    payload_type: ClassVar[int] = PayloadType.ID
    id_type: int
    data: bytes
    protocol: int = 0
    port: int = 0

    def encode_body(self) -> bytes:
        return struct.pack("!BBH", self.id_type, self.protocol, self.port) + self.data

    # Constructors for the identities IKEv1 remote access uses.
    @staticmethod
    def key_id(name: str, protocol: int = 17, port: int = 500) -> IdPayload:
        return IdPayload(IdType.KEY_ID, name.encode(), protocol, port)

    @staticmethod
    def fqdn(name: str, protocol: int = 17, port: int = 500) -> IdPayload:
        return IdPayload(IdType.FQDN, name.encode(), protocol, port)

    @staticmethod
    def ipv4(address: str, protocol: int = 0, port: int = 0) -> IdPayload:
        return IdPayload(IdType.IPV4_ADDR, ipaddress.IPv4Address(address).packed, protocol, port)

    @staticmethod
    def ipv4_subnet(network: str, protocol: int = 0, port: int = 0) -> IdPayload:
        net = ipaddress.IPv4Network(network, strict=False)
        return IdPayload(
            IdType.IPV4_ADDR_SUBNET,
            net.network_address.packed + net.netmask.packed,
            protocol,
            port,
        )

    @staticmethod
    def for_network(network: ipaddress.IPv4Network) -> IdPayload:
        """A /32 as IPV4_ADDR (what vpnc sends for its own side), anything else as a subnet."""
        if network.prefixlen == 32:
            return IdPayload(IdType.IPV4_ADDR, network.network_address.packed)
        return IdPayload(
            IdType.IPV4_ADDR_SUBNET, network.network_address.packed + network.netmask.packed
        )

    def as_name(self) -> str | None:
        """Text identities (KEY_ID, FQDN, USER_FQDN) as a string, others None."""
        if self.id_type in (IdType.KEY_ID, IdType.FQDN, IdType.USER_FQDN):
            return self.data.decode("utf-8", errors="replace")
        return None

    def as_network(self) -> ipaddress.IPv4Network | None:
        """IPv4 address / subnet / range identities as a network (ranges must be a CIDR)."""
        try:
            if self.id_type == IdType.IPV4_ADDR and len(self.data) == 4:
                return ipaddress.IPv4Network(ipaddress.IPv4Address(self.data))
            if self.id_type == IdType.IPV4_ADDR_SUBNET and len(self.data) == 8:
                addr = ipaddress.IPv4Address(self.data[:4])
                mask = ipaddress.IPv4Address(self.data[4:])
                return ipaddress.IPv4Network(f"{addr}/{mask}", strict=False)
            if self.id_type == IdType.IPV4_ADDR_RANGE and len(self.data) == 8:
                first = ipaddress.IPv4Address(self.data[:4])
                last = ipaddress.IPv4Address(self.data[4:])
                nets = list(ipaddress.summarize_address_range(first, last))
                return nets[0] if len(nets) == 1 else None
        except ValueError:
            return None
        return None

    def describe(self) -> str:
        name = self.as_name()
        if name is not None:
            return f"{IdType(self.id_type).name}:{name}"
        net = self.as_network()
        if net is not None:
            return str(net)
        return f"id-type-{self.id_type}:{self.data.hex()}"


@dataclass(frozen=True)
class NotifyPayload:
    payload_type: ClassVar[int] = PayloadType.NOTIFY
    notify_type: int
    protocol: int = 1
    spi: bytes = b""
    data: bytes = b""
    doi: int = DOI_IPSEC

    def encode_body(self) -> bytes:
        if len(self.spi) > 255:
            raise ValueError("notify SPI longer than 255 bytes")
        return (
            struct.pack("!IBBH", self.doi, self.protocol, len(self.spi), self.notify_type)
            + self.spi
            + self.data
        )


@dataclass(frozen=True)
class DeletePayload:
    payload_type: ClassVar[int] = PayloadType.DELETE
    protocol: int
    spis: tuple[bytes, ...]
    spi_size: int = 4
    doi: int = DOI_IPSEC

    def __post_init__(self) -> None:
        for spi in self.spis:
            if len(spi) != self.spi_size:
                raise ValueError(f"delete: SPI of {len(spi)} bytes, spi_size is {self.spi_size}")

    def encode_body(self) -> bytes:
        return struct.pack(
            "!IBBH", self.doi, self.protocol, self.spi_size, len(self.spis)
        ) + b"".join(self.spis)


@dataclass(frozen=True)
class AttributePayload:
    """Mode-Config / XAUTH attribute payload (draft-dukes-ike-mode-cfg)."""

    payload_type: ClassVar[int] = PayloadType.ATTR
    cfg_type: int
    identifier: int
    attributes: tuple[Attribute, ...] = ()

    def encode_body(self) -> bytes:
        return struct.pack("!BBH", self.cfg_type, 0, self.identifier) + encode_attributes(
            self.attributes
        )

    def attr(self, attr_type: int) -> Attribute | None:
        for a in self.attributes:
            if a.type == attr_type:
                return a
        return None


@dataclass(frozen=True)
class NatDPayload:
    """NAT discovery hash; ``draft`` selects payload number 130 instead of 20."""

    data: bytes
    draft: bool = False

    @property
    def payload_type(self) -> int:
        return PayloadType.NAT_D_DRAFT if self.draft else PayloadType.NAT_D

    def encode_body(self) -> bytes:
        return self.data


@dataclass(frozen=True)
class NatOaPayload:
    """NAT original address (RFC 3947 section 5.2): ID type, 3 reserved bytes, address."""

    id_type: int
    address: bytes
    draft: bool = False

    @property
    def payload_type(self) -> int:
        return PayloadType.NAT_OA_DRAFT if self.draft else PayloadType.NAT_OA

    def encode_body(self) -> bytes:
        return bytes([self.id_type, 0, 0, 0]) + self.address


@dataclass(frozen=True)
class RawPayload:
    """A payload type this codec does not interpret (kept byte-exact)."""

    payload_type: int
    body: bytes

    def encode_body(self) -> bytes:
        return self.body


Payload = Union[  # noqa: UP007 - a named alias reads better in signatures
    SaPayload,
    KePayload,
    IdPayload,
    CertPayload,
    CertRequestPayload,
    HashPayload,
    SigPayload,
    NoncePayload,
    NotifyPayload,
    DeletePayload,
    VendorIdPayload,
    AttributePayload,
    NatDPayload,
    NatOaPayload,
    RawPayload,
]


def _decode_body(ptype: int, body: bytes, base: int) -> Payload:
    if ptype == PayloadType.SA:
        return _decode_sa(body, base)
    if ptype == PayloadType.KE:
        return KePayload(body)
    if ptype == PayloadType.HASH:
        return HashPayload(body)
    if ptype == PayloadType.SIG:
        return SigPayload(body)
    if ptype == PayloadType.NONCE:
        return NoncePayload(body)
    if ptype == PayloadType.VID:
        return VendorIdPayload(body)
    if ptype in (PayloadType.CERT, PayloadType.CR):
        if len(body) < 1:
            raise IkeDecodeError(base, "certificate payload without encoding byte")
        cls = CertPayload if ptype == PayloadType.CERT else CertRequestPayload
        return cls(body[0], body[1:])
    if ptype == PayloadType.ID:
        if len(body) < 4:
            raise IkeDecodeError(base, f"ID payload body of {len(body)} bytes (< 4)")
        id_type, protocol, port = struct.unpack_from("!BBH", body, 0)
        return IdPayload(id_type, body[4:], protocol, port)
    if ptype == PayloadType.NOTIFY:
        if len(body) < 8:
            raise IkeDecodeError(base, f"notify body of {len(body)} bytes (< 8)")
        doi, protocol, spi_size, ntype = struct.unpack_from("!IBBH", body, 0)
        if 8 + spi_size > len(body):
            raise IkeDecodeError(base + 5, f"notify: SPI size {spi_size} exceeds payload")
        return NotifyPayload(ntype, protocol, body[8 : 8 + spi_size], body[8 + spi_size :], doi)
    if ptype == PayloadType.DELETE:
        if len(body) < 8:
            raise IkeDecodeError(base, f"delete body of {len(body)} bytes (< 8)")
        doi, protocol, spi_size, count = struct.unpack_from("!IBBH", body, 0)
        if spi_size * count != len(body) - 8:
            raise IkeDecodeError(
                base + 6,
                f"delete: {count} SPIs of {spi_size} bytes do not fill {len(body) - 8} bytes",
            )
        if spi_size == 0 and count:
            raise IkeDecodeError(base + 5, "delete: zero-length SPIs")
        spis = tuple(body[8 + i * spi_size : 8 + (i + 1) * spi_size] for i in range(count))
        return DeletePayload(protocol, spis, spi_size, doi)
    if ptype == PayloadType.ATTR:
        if len(body) < 4:
            raise IkeDecodeError(base, f"attribute payload body of {len(body)} bytes (< 4)")
        cfg_type, reserved, ident = struct.unpack_from("!BBH", body, 0)
        if reserved:
            raise IkeDecodeError(base + 1, "attribute payload: reserved byte not zero")
        return AttributePayload(cfg_type, ident, decode_attributes(body[4:], base + 4))
    if ptype in (PayloadType.NAT_D, PayloadType.NAT_D_DRAFT):
        return NatDPayload(body, draft=ptype == PayloadType.NAT_D_DRAFT)
    if ptype in (PayloadType.NAT_OA, PayloadType.NAT_OA_DRAFT):
        if len(body) < 4:
            raise IkeDecodeError(base, f"NAT-OA body of {len(body)} bytes (< 4)")
        if body[1:4] != b"\x00\x00\x00":
            raise IkeDecodeError(base + 1, "NAT-OA: reserved bytes not zero")
        return NatOaPayload(body[0], body[4:], draft=ptype == PayloadType.NAT_OA_DRAFT)
    if ptype in (PayloadType.PROPOSAL, PayloadType.TRANSFORM):
        raise IkeDecodeError(
            base - 4,
            f"payload type {ptype} outside an SA payload",
            notify=NotifyType.INVALID_PAYLOAD_TYPE,
        )
    return RawPayload(ptype, body)


# ---------------------------------------------------------------------------------------------
# Payload chains and messages


def encode_chain(payloads: Iterable[Payload]) -> bytes:
    """Payloads with their generic headers, linked by next-payload fields."""
    items = list(payloads)
    out = bytearray()
    for i, p in enumerate(items):
        body = p.encode_body()
        if len(body) + 4 > 0xFFFF:
            raise ValueError(f"payload type {p.payload_type} longer than 65535 bytes")
        nxt = items[i + 1].payload_type if i + 1 < len(items) else 0
        out += _GEN.pack(nxt, 0, len(body) + 4)
        out += body
    return bytes(out)


@dataclass(frozen=True)
class DecodedChain:
    """Payloads plus where each one sat in the buffer (generic header included)."""

    payloads: tuple[Payload, ...]
    spans: tuple[tuple[int, int], ...]
    end: int  # offset just after the last payload (padding starts here)


def decode_chain(
    first_type: int, data: bytes, *, base_offset: int = 0, allow_trailing: bool = False
) -> DecodedChain:
    """Walk a payload chain starting with payload type ``first_type`` at ``data[0]``."""
    payloads: list[Payload] = []
    spans: list[tuple[int, int]] = []
    pos = 0
    ptype = first_type
    while ptype != PayloadType.NONE:
        if len(data) - pos < 4:
            raise IkeDecodeError(base_offset + pos, "generic header truncated", payload=ptype)
        nxt, reserved, length = _GEN.unpack_from(data, pos)
        if reserved:
            raise IkeDecodeError(base_offset + pos + 1, "reserved byte not zero", payload=ptype)
        if length < 4:
            raise IkeDecodeError(base_offset + pos + 2, f"length {length}", payload=ptype)
        if pos + length > len(data):
            raise IkeDecodeError(
                base_offset + pos + 2,
                f"length {length} runs past the end ({len(data) - pos} bytes left)",
                payload=ptype,
            )
        body = bytes(data[pos + 4 : pos + length])
        try:
            payloads.append(_decode_body(ptype, body, base_offset + pos + 4))
        except IkeDecodeError as exc:
            if exc.payload is None:
                exc.payload = ptype  # which payload the problem is in, for the drop report
            raise
        spans.append((pos, pos + length))
        pos += length
        ptype = nxt
    if pos != len(data) and not allow_trailing:
        raise IkeDecodeError(base_offset + pos, f"{len(data) - pos} bytes after the last payload")
    return DecodedChain(tuple(payloads), tuple(spans), pos)


@dataclass(frozen=True)
class Header:
    icookie: bytes
    rcookie: bytes
    next_payload: int
    exchange: int
    flags: int
    message_id: int
    length: int
    version: int = ISAKMP_VERSION

    @property
    def encrypted(self) -> bool:
        return bool(self.flags & Flag.ENCRYPTION)

    def encode(self) -> bytes:
        return _HDR.pack(
            self.icookie,
            self.rcookie,
            self.next_payload,
            self.version,
            self.exchange,
            self.flags,
            self.message_id,
            self.length,
        )


def decode_header(data: bytes) -> Header:
    """Parse and sanity-check the 28-byte ISAKMP header of a whole datagram."""
    if len(data) < HEADER_LEN:
        raise IkeDecodeError(0, f"datagram of {len(data)} bytes is shorter than an ISAKMP header")
    icookie, rcookie, nxt, version, exchange, flags, msgid, length = _HDR.unpack_from(data, 0)
    if version >> 4 != 1:
        raise IkeDecodeError(
            17, f"major version {version >> 4} is not 1", notify=NotifyType.INVALID_MAJOR_VERSION
        )
    if version != ISAKMP_VERSION:
        raise IkeDecodeError(
            17, f"minor version {version & 0xF} is not 0", notify=NotifyType.INVALID_MINOR_VERSION
        )
    if flags & ~0x07:
        raise IkeDecodeError(
            19, f"unknown flag bits 0x{flags:02x}", notify=NotifyType.INVALID_FLAGS
        )
    if length != len(data):
        raise IkeDecodeError(
            24,
            f"header length {length} differs from datagram length {len(data)}",
            notify=NotifyType.UNEQUAL_PAYLOAD_LENGTHS,
        )
    if icookie == bytes(8):
        raise IkeDecodeError(0, "initiator cookie is zero", notify=NotifyType.INVALID_COOKIE)
    return Header(icookie, rcookie, nxt, exchange, flags, msgid, length, version)


@dataclass(frozen=True)
class Message:
    """A plaintext ISAKMP message (header fields + payloads)."""

    icookie: bytes
    rcookie: bytes
    exchange: int
    payloads: tuple[Payload, ...] = ()
    flags: int = 0
    message_id: int = 0
    # Where each payload sat in the datagram; filled by the decoder, ignored by ==.
    spans: tuple[tuple[int, int], ...] = field(default=(), compare=False, repr=False)
    raw: bytes = field(default=b"", compare=False, repr=False)

    def encode(self) -> bytes:
        chain = encode_chain(self.payloads)
        first = self.payloads[0].payload_type if self.payloads else 0
        header = Header(
            self.icookie,
            self.rcookie,
            first,
            self.exchange,
            self.flags,
            self.message_id,
            HEADER_LEN + len(chain),
        )
        return header.encode() + chain

    def find(self, cls: type) -> list:
        return [p for p in self.payloads if isinstance(p, cls)]

    def first(self, cls: type):
        for p in self.payloads:
            if isinstance(p, cls):
                return p
        return None

    def raw_payload(self, index: int) -> bytes:
        """The bytes of payload ``index`` as received, generic header included."""
        start, end = self.spans[index]
        return self.raw[start:end]


@dataclass(frozen=True)
class EncryptedMessage:
    """A message with the E flag set: header in clear, payload chain still encrypted."""

    header: Header
    ciphertext: bytes


def decode_message(data: bytes) -> Message | EncryptedMessage:
    """Decode a whole datagram (without any non-ESP marker)."""
    data = bytes(data)
    header = decode_header(data)
    if header.encrypted:
        return EncryptedMessage(header, data[HEADER_LEN:])
    chain = decode_chain(header.next_payload, data[HEADER_LEN:], base_offset=HEADER_LEN)
    return Message(
        header.icookie,
        header.rcookie,
        header.exchange,
        chain.payloads,
        header.flags,
        header.message_id,
        spans=tuple((s + HEADER_LEN, e + HEADER_LEN) for s, e in chain.spans),
        raw=data,
    )


def decode_plaintext_body(header: Header, plaintext: bytes) -> Message:
    """Decode the decrypted payload chain of an encrypted message (padding allowed)."""
    chain = decode_chain(
        header.next_payload, plaintext, base_offset=HEADER_LEN, allow_trailing=True
    )
    return Message(
        header.icookie,
        header.rcookie,
        header.exchange,
        chain.payloads,
        header.flags,
        header.message_id,
        spans=chain.spans,
        raw=plaintext[: chain.end],
    )
