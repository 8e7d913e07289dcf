"""The Internet checksum (RFC 1071), for the packets the agent and its tests build."""

from __future__ import annotations

import struct


def internet_checksum(data: bytes) -> int:
    """One's-complement sum of 16-bit words, complemented; odd data gets a zero pad byte."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
