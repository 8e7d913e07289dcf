"""Anti-replay sliding window (RFC 4303 §3.4.3), 32-bit sequence numbers, no ESN.

The receiver may *check* a sequence number before verifying the ICV (cheap rejection) but
must *update* the window only after the ICV passed, or a forged packet could shift it.
Bit i of ``bitmap`` stands for sequence number ``top - i``.
"""

from __future__ import annotations

from labctl.esp.errors import EspReplay

DEFAULT_WINDOW = 64


class ReplayWindow:
    __slots__ = ("_mask", "bitmap", "size", "top")

    def __init__(self, size: int = DEFAULT_WINDOW) -> None:
        if size < 32:  # RFC 4303 §3.4.3: minimum 32, 64 recommended
            raise ValueError(f"replay window size {size} is below the RFC 4303 minimum of 32")
        self.size = size
        self._mask = (1 << size) - 1
        self.top = 0  # highest authenticated sequence number so far (0: none yet)
        self.bitmap = 0

    def check(self, seq: int) -> None:
        """Raise ``EspReplay`` if ``seq`` must be rejected; never changes state."""
        if seq > self.top:
            return
        if seq == 0:
            raise EspReplay("sequence number 0 is never sent (RFC 4303 §3.3.3)")
        offset = self.top - seq
        if offset >= self.size:
            raise EspReplay(f"sequence number {seq} is left of the window (top {self.top})")
        if (self.bitmap >> offset) & 1:
            raise EspReplay(f"sequence number {seq} already received")

    def update(self, seq: int) -> None:
        """Record an authenticated ``seq`` (call only after ``check`` and the ICV passed)."""
        top = self.top
        if seq > top:
            shift = seq - top
            self.bitmap = ((self.bitmap << shift) | 1) & self._mask if shift < self.size else 1
            self.top = seq
        else:
            self.bitmap |= 1 << (top - seq)
