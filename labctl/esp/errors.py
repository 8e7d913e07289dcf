"""Typed errors for ESP processing of untrusted bytes.

Every failure on received data is an ``EspError`` subclass whose ``reason`` is a short,
stable counter key ("malformed", "auth", "replay", ...). The data plane counts drops by that
key, so reasons must never change spelling. Messages name the packet field and offset but
never key material.
"""

from __future__ import annotations


class EspError(Exception):
    """Base class: a received packet was dropped. ``reason`` is the drop-counter key."""

    reason = "error"


class EspMalformed(EspError):
    """Too short, misaligned or structurally impossible packet."""

    reason = "malformed"


class EspAuthFailed(EspError):
    """ICV mismatch: the packet was not produced by the holder of the integrity key."""

    reason = "auth"


class EspReplay(EspError):
    """Sequence number already seen, zero, or left of the anti-replay window."""

    reason = "replay"


class EspBadPadding(EspError):
    """Decrypted trailer is inconsistent: pad length too large or pad bytes not 1, 2, 3..."""

    reason = "padding"


class EspUnknownSpi(EspError):
    """No inbound SA holds this SPI."""

    reason = "unknown_spi"

    def __init__(self, spi: int) -> None:
        super().__init__(f"no inbound SA for SPI 0x{spi:08x}")
        self.spi = spi


class EspSequenceExhausted(EspError):
    """Outbound sequence counter would wrap past 2^32-1: the SA must be rekeyed (RFC 4303)."""

    reason = "seq_exhausted"
