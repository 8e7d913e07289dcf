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

The payloads live by family: data attributes in :mod:`.attributes`, the SA / proposal /
transform family in :mod:`.sa_payload`, every other payload and the one table that decodes
payloads by type in :mod:`.payloads`; this module walks payload chains and whole messages
(and re-exports the payload types, so ``from labctl.ike.codec import X`` finds them all).

The codec knows nothing about encryption: an encrypted message is a header plus ciphertext
(:class:`EncryptedMessage`); the security-association layer decrypts it and calls
:func:`decode_chain` on the plaintext.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from .attributes import Attribute, decode_attributes, encode_attributes
from .constants import HEADER_LEN, ISAKMP_VERSION, Flag, NotifyType
from .errors import IkeDecodeError
from .payloads import (
    PAYLOAD_DECODERS,
    AttributePayload,
    CertPayload,
    CertRequestPayload,
    DeletePayload,
    HashPayload,
    IdPayload,
    KePayload,
    NatDPayload,
    NatOaPayload,
    NoncePayload,
    NotifyPayload,
    Payload,
    RawPayload,
    SigPayload,
    VendorIdPayload,
)
from .records import frozen
from .sa_payload import Proposal, SaPayload, Transform

__all__ = [  # the payload types live in their family modules; everything is found here
    "Attribute",
    "AttributePayload",
    "CertPayload",
    "CertRequestPayload",
    "DecodedChain",
    "DeletePayload",
    "EncryptedMessage",
    "HashPayload",
    "Header",
    "IdPayload",
    "KePayload",
    "Message",
    "NatDPayload",
    "NatOaPayload",
    "NoncePayload",
    "NotifyPayload",
    "Payload",
    "Proposal",
    "RawPayload",
    "SaPayload",
    "SigPayload",
    "Transform",
    "VendorIdPayload",
    "decode_attributes",
    "decode_chain",
    "decode_header",
    "decode_message",
    "decode_plaintext_body",
    "encode_attributes",
    "encode_chain",
]

# The fixed layouts, compiled once; the SA layer packs encrypted headers with them too.
HEADER_STRUCT = _HDR = struct.Struct("!8s8sBBBBII")
GENERIC_HEADER = _GEN = struct.Struct("!BBH")
_ENCRYPTION = int(Flag.ENCRYPTION)  # (an enum member read per message is slow on 3.11)
_GEN_PACK = _GEN.pack
_GEN_UNPACK = _GEN.unpack_from

# ---------------------------------------------------------------------------------------------
# Payload chains and messages


def encode_chain(payloads: Iterable[Payload]) -> bytes:
    """Payloads with their generic headers, linked by next-payload fields."""
    items = payloads if isinstance(payloads, (list, tuple)) else list(payloads)
    parts: list[bytes] = []
    append = parts.append
    last = len(items) - 1
    for i, p in enumerate(items):
        body = p.encode_body()
        length = len(body) + 4
        if length > 0xFFFF:
            raise ValueError(f"payload type {p.payload_type} longer than 65535 bytes")
        append(_GEN_PACK(items[i + 1].payload_type if i < last else 0, 0, length))
        append(body)
    return b"".join(parts)


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
    if not isinstance(data, bytes):
        data = bytes(data)  # payload bodies are slices of it: bytes, never views
    payloads: list[Payload] = []
    spans: list[tuple[int, int]] = []
    append = payloads.append
    span = spans.append
    decoders = PAYLOAD_DECODERS
    pos = 0
    size = len(data)
    ptype = first_type
    while ptype:  # PayloadType.NONE ends the chain
        try:
            nxt, reserved, length = _GEN_UNPACK(data, pos)
        except struct.error:  # fewer than 4 bytes left
            raise IkeDecodeError(
                base_offset + pos, "generic header truncated", payload=ptype
            ) from None
        end = pos + length
        if reserved or length < 4 or end > size:  # one test on the good path
            _bad_generic_header(ptype, reserved, length, size - pos, base_offset + pos)
        body = data[pos + 4 : end]
        decoder = decoders.get(ptype)
        try:
            append(
                decoder(body, base_offset + pos + 4)
                if decoder is not None
                else frozen(RawPayload, {"payload_type": ptype, "body": body})
            )
        except IkeDecodeError as exc:
            if exc.payload is None:
                exc.payload = ptype  # which payload the problem is in, for the drop report
            raise
        span((pos, end))
        pos = end
        ptype = nxt
    if pos != len(data) and not allow_trailing:
        raise IkeDecodeError(base_offset + pos, f"{len(data) - pos} bytes after the last payload")
    return frozen(DecodedChain, {"payloads": tuple(payloads), "spans": tuple(spans), "end": pos})


def _bad_generic_header(ptype: int, reserved: int, length: int, left: int, at: int) -> None:
    """Raise the error for a generic header that failed the chain walker's one check."""
    if reserved:
        raise IkeDecodeError(at + 1, "reserved byte not zero", payload=ptype)
    if length < 4:
        raise IkeDecodeError(at + 2, f"length {length}", payload=ptype)
    raise IkeDecodeError(
        at + 2, f"length {length} runs past the end ({left} bytes left)", payload=ptype
    )


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
        return bool(self.flags & _ENCRYPTION)

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
    return frozen(
        Header,
        {
            "icookie": icookie,
            "rcookie": rcookie,
            "next_payload": nxt,
            "exchange": exchange,
            "flags": flags,
            "message_id": msgid,
            "length": length,
            "version": version,
        },
    )


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
        return (
            _HDR.pack(
                self.icookie,
                self.rcookie,
                first,
                ISAKMP_VERSION,
                self.exchange,
                self.flags,
                self.message_id,
                HEADER_LEN + len(chain),
            )
            + chain
        )

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


def decode_message(data: bytes, header: Header | None = None) -> Message | EncryptedMessage:
    """Decode a whole datagram (without any non-ESP marker); ``header``: what
    :func:`decode_header` already returned for these very bytes (the engine decodes it first)."""
    data = bytes(data)
    if header is None:
        header = decode_header(data)
    if header.flags & _ENCRYPTION:
        return frozen(EncryptedMessage, {"header": header, "ciphertext": data[HEADER_LEN:]})
    chain = decode_chain(header.next_payload, data[HEADER_LEN:], base_offset=HEADER_LEN)
    return _message(
        header,
        chain.payloads,
        tuple((s + HEADER_LEN, e + HEADER_LEN) for s, e in chain.spans),
        data,
    )


def _message(header: Header, payloads: tuple, spans: tuple, raw: bytes) -> Message:
    return frozen(
        Message,
        {
            "icookie": header.icookie,
            "rcookie": header.rcookie,
            "exchange": header.exchange,
            "payloads": payloads,
            "flags": header.flags,
            "message_id": header.message_id,
            "spans": spans,
            "raw": raw,
        },
    )


def decode_plaintext_body(header: Header, plaintext: bytes) -> Message:
    """Decode the decrypted payload chain of an encrypted message (padding allowed)."""
    chain = decode_chain(
        header.next_payload, plaintext, base_offset=HEADER_LEN, allow_trailing=True
    )
    return _message(header, chain.payloads, chain.spans, plaintext[: chain.end])
