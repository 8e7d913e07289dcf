"""ISAKMP data attributes (RFC 2408 section 3.3): the TV / TLV pairs inside transforms,
Mode-Config / XAUTH attribute payloads and notify data.

Decoding is liberal where deployed implementations differ and the meaning stays the same:
1..3 zero bytes after the last attribute are padding, numbers come in any width.  Anything
else that does not add up raises :class:`IkeDecodeError` with the offending byte's offset.
"""

from __future__ import annotations

import struct
from collections import namedtuple
from collections.abc import Iterable

from .errors import IkeDecodeError

_TV = struct.Struct("!HH").pack  # type | 0x8000, value
_TL = struct.Struct("!HH").pack  # type, length (then the value)
_HH = struct.Struct("!HH").unpack_from
_tuple_new = tuple.__new__


class Attribute(namedtuple("Attribute", ("type", "value"))):
    """One data attribute.  An ``int`` value is sent in the short TV form (0..65535), a
    ``bytes`` value in the variable TLV form; the decoder gives back the same form it read.

    A named tuple (immutable, compared and hashed by value): ~80 attributes per session
    pass through the engine, and a frozen dataclass validated in ``__post_init__`` cost
    ~8 % of a session.  ``Attribute(t, v)`` still validates (the boundary: values our own
    code or a caller builds); the decoder makes them with ``tuple.__new__``, unvalidated,
    because 16-bit fields read off the wire are in range by construction."""

    __slots__ = ()

    def __new__(cls, type: int, value: int | bytes) -> Attribute:
        if not 0 <= type <= 0x7FFF:
            raise ValueError(f"attribute type {type} out of range 0..32767")
        if isinstance(value, int):
            if not 0 <= value <= 0xFFFF:
                raise ValueError(
                    f"attribute {type}: TV value {value} out of range; use bytes (TLV)"
                )
        elif isinstance(value, bytes):
            if len(value) > 0xFFFF:
                raise ValueError(f"attribute {type}: TLV value longer than 65535 bytes")
        else:
            raise TypeError(f"attribute {type}: value must be int or bytes")
        return _tuple_new(cls, (type, value))

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
        return encode_attributes((self,))


def encode_attributes(attributes: Iterable[Attribute]) -> bytes:
    out = []
    for t, v in attributes:
        if isinstance(v, int):
            out.append(_TV(t | 0x8000, v))
        else:
            out.append(_TL(t, len(v)))
            out.append(v)
    return b"".join(out)


def decode_attributes(data: bytes, base_offset: int = 0) -> tuple[Attribute, ...]:
    """Data attributes filling ``data``; 1..3 zero bytes after the last one are padding."""
    attrs: list[Attribute] = []
    append = attrs.append
    pos = 0
    n = len(data)
    try:
        while pos < n:
            raw_type, value = _HH(data, pos)  # struct.error: fewer than 4 bytes left
            if raw_type & 0x8000:
                append(_tuple_new(Attribute, (raw_type & 0x7FFF, value)))
                pos += 4
            else:
                end = pos + 4 + value
                if end > n:
                    raise IkeDecodeError(
                        base_offset + pos,
                        f"attribute {raw_type}: length {value} runs past the end "
                        f"({n - pos - 4} bytes left)",
                    )
                append(_tuple_new(Attribute, (raw_type, bytes(data[pos + 4 : end]))))
                pos = end
    except struct.error:
        # 1..3 bytes after the last attribute: zero padding (deployed gateways) or an error
        if any(data[pos:]):
            raise IkeDecodeError(
                base_offset + pos,
                f"attribute header truncated ({n - pos} bytes left, not zero padding)",
            ) from None
    return tuple(attrs)
