"""The SA payload family (RFC 2408 sections 3.4-3.6): SA -> proposals -> transforms.

Proposals and transforms are not payloads of their own in a chain: they only live inside an
SA payload (a PROPOSAL or TRANSFORM in a message's chain is refused by :mod:`.payloads`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from .attributes import Attribute, decode_attributes, encode_attributes
from .constants import DOI_IPSEC, SIT_IDENTITY_ONLY, NotifyType, PayloadType
from .errors import IkeDecodeError
from .records import frozen

_GEN = struct.Struct("!BBH")  # a generic header: next payload, reserved, length


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

    @classmethod
    def decode(cls, body: bytes, base: int) -> SaPayload:
        """An SA payload's body; ``base``: its offset in the datagram, for errors.

        Decoded values are immutable and depend on the bytes alone, so the ones that decoded
        are kept by their bytes (a client sends the same phase-1 offer every session, and the
        gateway the same answer): a bounded table, emptied when full (random payloads from a
        hostile peer only cost it its hits).  Failures are never kept: they raise again."""
        cacheable = cls is SaPayload and type(body) is bytes and len(body) <= _CACHED_BODY_MAX
        hit = _DECODED.get(body) if cacheable else None
        if hit is not None:
            return hit
        sa = cls._decode(body, base)
        if cacheable:
            if len(_DECODED) >= _CACHED_MAX:
                _DECODED.clear()
            _DECODED[body] = sa
        return sa

    @classmethod
    def _decode(cls, body: bytes, base: int) -> SaPayload:
        if len(body) < 8:
            raise IkeDecodeError(base, "SA payload shorter than DOI + situation")
        doi, situation = struct.unpack_from("!II", body, 0)
        proposals: list[Proposal] = []
        pos = 8
        while pos < len(body):
            p, pos, nxt = _decode_proposal(body, pos, len(body), base)
            proposals.append(p)
            if nxt == 0 and pos != len(body):
                raise IkeDecodeError(
                    base + pos, f"SA: {len(body) - pos} bytes after the last proposal"
                )
            if nxt == PayloadType.PROPOSAL and pos >= len(body):
                raise IkeDecodeError(base + pos, "SA: proposal chain runs past the end")
        return frozen(cls, {"proposals": tuple(proposals), "doi": doi, "situation": situation})


# SA payloads decoded before, by their bytes (see SaPayload.decode).
_DECODED: dict[bytes, SaPayload] = {}
_CACHED_MAX = 256
_CACHED_BODY_MAX = 1024


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
    t = frozen(Transform, {"number": number, "transform_id": tid, "attributes": attrs})
    return t, pos + length, nxt


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
    proposal = frozen(
        Proposal,
        {"number": number, "protocol": protocol, "spi": spi, "transforms": tuple(transforms)},
    )
    return proposal, pend, nxt
