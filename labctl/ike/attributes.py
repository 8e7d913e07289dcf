"""ISAKMP data attributes (RFC 2408 section 3.3): the TV / TLV pairs inside transforms,
Mode-Config / XAUTH attribute payloads and notify data.

Decoding is liberal where deployed implementations differ and the meaning stays the same:
1..3 zero bytes after the last attribute are padding, numbers come in any width.  Anything
else that does not add up raises :class:`IkeDecodeError` with the offending byte's offset.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import IkeDecodeError


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
