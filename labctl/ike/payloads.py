"""Every ISAKMP payload but the SA family (:mod:`.sa_payload`): its value type, its body
encoding (``encode_body``) and decoding (``decode``), and THE table that picks the decoder
by payload type (:data:`PAYLOAD_DECODERS`).

A type without an entry is kept byte-exact as :class:`RawPayload` (IKE fragments, vendor
payloads); PROPOSAL and TRANSFORM are refused outside an SA payload.  Adding a payload:
a frozen dataclass with ``payload_type``, ``encode_body`` and ``decode``, one table entry,
and one member in :data:`Payload`.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import ClassVar, Union

from .addrs import canonical_ipv4, id_network
from .attributes import Attribute, decode_attributes, encode_attributes
from .constants import DOI_IPSEC, IdType, NotifyType, PayloadType
from .errors import IkeDecodeError
from .records import frozen
from .sa_payload import SaPayload

_BBH = struct.Struct("!BBH").unpack_from
_IBBH = struct.Struct("!IBBH").unpack_from


@dataclass(frozen=True)
class _OpaquePayload:
    """A payload whose whole body is opaque bytes (KE, HASH, SIG, NONCE, VID)."""

    data: bytes

    def encode_body(self) -> bytes:
        return self.data

    @classmethod
    def decode(cls, body: bytes, base: int):
        return frozen(cls, {"data": body})


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
class _CertificateBody:
    """CERT and CR: an encoding byte, then the data."""

    encoding: int
    data: bytes

    def encode_body(self) -> bytes:
        return bytes([self.encoding]) + self.data

    @classmethod
    def decode(cls, body: bytes, base: int):
        if len(body) < 1:
            raise IkeDecodeError(base, "certificate payload without encoding byte")
        return cls(body[0], body[1:])


@dataclass(frozen=True)
class CertPayload(_CertificateBody):
    payload_type: ClassVar[int] = PayloadType.CERT


@dataclass(frozen=True)
class CertRequestPayload(_CertificateBody):
    payload_type: ClassVar[int] = PayloadType.CR


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

    @classmethod
    def decode(cls, body: bytes, base: int) -> IdPayload:
        if len(body) < 4:
            raise IkeDecodeError(base, f"ID payload body of {len(body)} bytes (< 4)")
        id_type, protocol, port = _BBH(body, 0)
        return frozen(
            cls, {"id_type": id_type, "data": body[4:], "protocol": protocol, "port": port}
        )

    # Constructors for the identities IKEv1 remote access uses.
    @staticmethod
    def key_id(name: str, protocol: int = 17, port: int = 500) -> IdPayload:
        return IdPayload(IdType.KEY_ID, name.encode(), protocol, port)

    @staticmethod
    def fqdn(name: str, protocol: int = 17, port: int = 500) -> IdPayload:
        return IdPayload(IdType.FQDN, name.encode(), protocol, port)

    @staticmethod
    def ipv4(address: str, protocol: int = 0, port: int = 0) -> IdPayload:
        packed = canonical_ipv4(address) or ipaddress.IPv4Address(address).packed
        return IdPayload(IdType.IPV4_ADDR, packed, protocol, port)

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
        return id_network(self.id_type, self.data)

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

    @classmethod
    def decode(cls, body: bytes, base: int) -> NotifyPayload:
        if len(body) < 8:
            raise IkeDecodeError(base, f"notify body of {len(body)} bytes (< 8)")
        doi, protocol, spi_size, ntype = _IBBH(body, 0)
        if 8 + spi_size > len(body):
            raise IkeDecodeError(base + 5, f"notify: SPI size {spi_size} exceeds payload")
        return frozen(
            cls,
            {
                "notify_type": ntype,
                "protocol": protocol,
                "spi": body[8 : 8 + spi_size],
                "data": body[8 + spi_size :],
                "doi": doi,
            },
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

    @classmethod
    def decode(cls, body: bytes, base: int) -> DeletePayload:
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
        return cls(protocol, spis, spi_size, doi)


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

    @classmethod
    def decode(cls, body: bytes, base: int) -> AttributePayload:
        if len(body) < 4:
            raise IkeDecodeError(base, f"attribute payload body of {len(body)} bytes (< 4)")
        cfg_type, reserved, ident = _BBH(body, 0)
        if reserved:
            raise IkeDecodeError(base + 1, "attribute payload: reserved byte not zero")
        attributes = decode_attributes(body[4:], base + 4)
        return frozen(cls, {"cfg_type": cfg_type, "identifier": ident, "attributes": attributes})


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

    @classmethod
    def decode(cls, body: bytes, base: int, *, draft: bool) -> NatDPayload:
        return frozen(cls, {"data": body, "draft": draft})


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

    @classmethod
    def decode(cls, body: bytes, base: int, *, draft: bool) -> NatOaPayload:
        if len(body) < 4:
            raise IkeDecodeError(base, f"NAT-OA body of {len(body)} bytes (< 4)")
        if body[1:4] != b"\x00\x00\x00":
            raise IkeDecodeError(base + 1, "NAT-OA: reserved bytes not zero")
        return cls(body[0], body[4:], draft=draft)


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


def _outside_sa(ptype: int, body: bytes, base: int) -> Payload:
    raise IkeDecodeError(
        base - 4,
        f"payload type {ptype} outside an SA payload",
        notify=NotifyType.INVALID_PAYLOAD_TYPE,
    )


# Payload type -> decoder of its body (``base``: the body's offset in the datagram).
PAYLOAD_DECODERS: dict[int, Callable[[bytes, int], Payload]] = {
    PayloadType.SA: SaPayload.decode,
    PayloadType.PROPOSAL: partial(_outside_sa, PayloadType.PROPOSAL),
    PayloadType.TRANSFORM: partial(_outside_sa, PayloadType.TRANSFORM),
    PayloadType.KE: KePayload.decode,
    PayloadType.ID: IdPayload.decode,
    PayloadType.CERT: CertPayload.decode,
    PayloadType.CR: CertRequestPayload.decode,
    PayloadType.HASH: HashPayload.decode,
    PayloadType.SIG: SigPayload.decode,
    PayloadType.NONCE: NoncePayload.decode,
    PayloadType.NOTIFY: NotifyPayload.decode,
    PayloadType.DELETE: DeletePayload.decode,
    PayloadType.VID: VendorIdPayload.decode,
    PayloadType.ATTR: AttributePayload.decode,
    PayloadType.NAT_D: partial(NatDPayload.decode, draft=False),
    PayloadType.NAT_D_DRAFT: partial(NatDPayload.decode, draft=True),
    PayloadType.NAT_OA: partial(NatOaPayload.decode, draft=False),
    PayloadType.NAT_OA_DRAFT: partial(NatOaPayload.decode, draft=True),
}


def decode_payload(ptype: int, body: bytes, base: int) -> Payload:
    """One payload's body; a type without a decoder is kept as :class:`RawPayload`."""
    decoder = PAYLOAD_DECODERS.get(ptype)
    return decoder(body, base) if decoder is not None else RawPayload(ptype, body)
