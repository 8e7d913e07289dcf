"""One-direction ESP security association: seal (outbound) or open (inbound), RFC 4303.

Packet layout: SPI (4) | Sequence (4) | IV | ciphertext of [payload | pad 1,2,3.. |
pad length (1) | next header (1)] | ICV. The ICV covers SPI through the end of the
ciphertext; the receiver verifies it before decrypting.

Hot-path design (measured, see bench/bench_esp.py): creating a CBC context per packet costs
8-16 us, more than encrypting 1400 bytes. So each SA keeps ONE long-lived CBC context
(libcrypto's EVP through ctypes, labctl/libcrypto.py) and never finalizes it:

- seal: feed ``R | plaintext`` with ``R`` a fresh random block. The first output block
  ``C0 = E(R xor chain)`` is uniformly random and unpredictable, so it is sent as the
  explicit IV (RFC 3602 §2.1 needs an unpredictable IV); the rest is exactly CBC of the
  plaintext under IV ``C0``.
- open: feed ``IV | ciphertext`` (contiguous in the packet). The first output block is
  garbage (the IV decrypted under a stale chain) and is skipped; after it the chain is the
  IV, so the rest is the plaintext.

Both need every ``update()`` to be block-aligned, which ``open`` guarantees by rejecting
misaligned ciphertext before touching the context. The HMAC is keyed once and copied per
packet.
"""

from __future__ import annotations

import hmac
import os
import struct
from collections.abc import Callable
from enum import StrEnum
from functools import partial
from typing import Any

from labctl import libcrypto
from labctl.esp.algorithms import CipherSpec, IntegritySpec, cipher_spec, integrity_spec
from labctl.esp.errors import (
    EspAuthFailed,
    EspBadPadding,
    EspError,
    EspMalformed,
    EspSequenceExhausted,
    EspUnknownSpi,
)
from labctl.esp.gcrypt_cbc import decryptor_3des
from labctl.esp.replay import DEFAULT_WINDOW, ReplayWindow

NEXT_HEADER_IPV4 = 4
NEXT_HEADER_IPV6 = 41
NEXT_HEADER_DUMMY = 59  # RFC 4303 §2.6: dummy packet, discard silently
SEQ_MAX = 0xFFFFFFFF  # no extended sequence numbers: the SA must be rekeyed before wrapping
ESP_HEADER_LEN = 8

# CBC contexts per SA ("lanes"), by cipher. 3DES (~60 us to encrypt a 1400-byte packet on
# the nodes, ~27 to decrypt; serial within one CBC chain) is where a tunnel is bound by the
# cipher, so bursts of its packets are sealed and opened on two lanes in two threads
# (agent/lanes). Every packet starts a chain of its own (random lead block / its IV), so
# lanes share no state. LABCTL_ESP_LANES=1 in the environment keeps one lane (A/B runs).
CIPHER_LANES: dict[str, int] = (
    {} if os.environ.get("LABCTL_ESP_LANES", "2") == "1" else {"3des-cbc": 2}
)

_PAD = bytes(range(1, 256))  # RFC 4303 §2.4 default padding content 1, 2, 3, ...
_HEADER = struct.Struct("!II")


class RandomPool:
    """os.urandom() in 4 KiB refills: one getrandom() syscall per ~250 packets, not one per
    packet (the syscall costs about as much as hashing a quarter of the packet)."""

    __slots__ = ("_buf", "_pos", "_size")

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._buf = b""
        self._pos = 0

    def __call__(self, n: int) -> bytes:
        pos = self._pos
        end = pos + n
        if end > len(self._buf):
            self._buf = os.urandom(max(self._size, n))
            pos, end = 0, n
        self._pos = end
        return self._buf[pos:end]


_RANDOM = RandomPool()


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class EspSa:
    """One ESP SA, one direction. Keys live only inside the cipher/HMAC objects."""

    __slots__ = (
        "_align",
        "_block",
        "_ctx",
        "_ctxs",
        "_icv_len",
        "_mac",
        "_min_len",
        "_random_block",
        "_replay",
        "_trailers",
        "bytes",
        "cipher",
        "created_at",
        "direction",
        "drops",
        "dummies",
        "integrity",
        "last_used",
        "packets",
        "seq",
        "spi",
    )

    def __init__(
        self,
        spi: int,
        cipher: str | CipherSpec,
        integrity: str | IntegritySpec,
        enc_key: bytes,
        auth_key: bytes,
        *,
        direction: Direction | str,
        replay_window: int = DEFAULT_WINDOW,
        created_at: float = 0.0,
        random_block: Callable[[int], bytes] = _RANDOM,
    ) -> None:
        if not 0 < spi <= 0xFFFFFFFF:
            raise ValueError(f"SPI {spi} out of range 1..2^32-1 (0 is reserved, RFC 4303 §2.1)")
        self.spi = spi
        self.cipher = cipher_spec(cipher)
        self.integrity = integrity_spec(integrity)
        self.direction = Direction(direction)
        if len(enc_key) != self.cipher.key_len:
            raise ValueError(
                f"encryption key for {self.cipher.name} must be {self.cipher.key_len} bytes,"
                f" got {len(enc_key)}"
            )
        if len(auth_key) != self.integrity.key_len:
            raise ValueError(
                f"integrity key for {self.integrity.name} must be {self.integrity.key_len}"
                f" bytes, got {len(auth_key)}"
            )
        self._block = self.cipher.iv_len  # size of the random lead block / skipped block
        self._align = self.cipher.alignment
        self._icv_len = self.integrity.icv_len
        self._min_len = ESP_HEADER_LEN + self.cipher.iv_len + self._align + self._icv_len
        self._random_block = random_block
        self._trailers = tuple(_PAD[:n] + bytes((n, NEXT_HEADER_IPV4)) for n in range(self._align))
        self._ctx: Any = None
        self._ctxs: tuple[Any, ...] = ()  # one CBC context per lane (_ctx is the first)
        if not self.cipher.is_null:
            lanes = CIPHER_LANES.get(self.cipher.name, 1)
            # Zero initial chain is fine: every packet's IV comes from a fresh random block.
            zero = bytes(self.cipher.iv_len)
            make: Callable[[], Any] = partial(
                libcrypto.cbc_context,
                self.cipher.name,
                enc_key,
                zero,
                encrypt=self.direction is Direction.OUT,
            )
            first = None
            if self.direction is Direction.IN and self.cipher.name == "3des-cbc":
                first = decryptor_3des(enc_key)  # several blocks at once (gcrypt_cbc)
                if first is not None:
                    make = partial(decryptor_3des, enc_key)
            if first is None:
                first = make()
            extra = [make() for _ in range(lanes - 1)]  # lanes share no state
            self._ctxs = (first, *extra) if None not in extra else (first,)
            self._ctx = first
        self._mac: Any = None
        if self.integrity.digest is not None:
            self._mac = hmac.new(auth_key, digestmod=self.integrity.digest)
        # RFC 4303 §3.4.3: anti-replay only when integrity is in use.
        self._replay: ReplayWindow | None = None
        if self.direction is Direction.IN and self._mac is not None and replay_window:
            self._replay = ReplayWindow(replay_window)
        self.seq = 0  # outbound: last sequence number sent
        self.packets = 0
        self.bytes = 0  # inner (plaintext payload) bytes
        self.dummies = 0
        self.drops: dict[str, int] = {}
        self.created_at = created_at
        self.last_used: float | None = None

    @classmethod
    def outbound(
        cls,
        spi: int,
        cipher: str | CipherSpec,
        integrity: str | IntegritySpec,
        enc_key: bytes,
        auth_key: bytes,
        **kw: Any,
    ) -> EspSa:
        return cls(spi, cipher, integrity, enc_key, auth_key, direction=Direction.OUT, **kw)

    @classmethod
    def inbound(
        cls,
        spi: int,
        cipher: str | CipherSpec,
        integrity: str | IntegritySpec,
        enc_key: bytes,
        auth_key: bytes,
        **kw: Any,
    ) -> EspSa:
        return cls(spi, cipher, integrity, enc_key, auth_key, direction=Direction.IN, **kw)

    def __repr__(self) -> str:
        return (
            f"EspSa(spi=0x{self.spi:08x}, direction={self.direction.value},"
            f" cipher={self.cipher.name}, integrity={self.integrity.name},"
            f" seq={self.seq}, packets={self.packets}, bytes={self.bytes})"
        )

    # ------------------------------------------------------------------ sizes
    def overhead(self) -> int:
        """Worst-case bytes ESP adds to a payload (header, IV, max padding, trailer, ICV)."""
        return ESP_HEADER_LEN + self.cipher.iv_len + (self._align - 1) + 2 + self._icv_len

    # ------------------------------------------------------------------ outbound
    def seal(
        self,
        payload: bytes | bytearray | memoryview,
        next_header: int = NEXT_HEADER_IPV4,
        now: float | None = None,
    ) -> bytearray:
        """Encrypt and authenticate one inner packet; returns the ESP packet."""
        seq, plain = self.prepare(payload, next_header, now)
        return self.encrypt_prepared(seq, plain)

    def prepare(
        self,
        payload: bytes | bytearray | memoryview,
        next_header: int = NEXT_HEADER_IPV4,
        now: float | None = None,
    ) -> tuple[int, bytes]:
        """The serial half of ``seal``: take the next sequence number, count the packet and
        build what gets encrypted (random lead block | payload | pad | trailer, a copy, so
        ``payload`` may be reused at once). Call from one thread, in sending order."""
        if self.direction is not Direction.OUT:
            raise TypeError(f"seal() on inbound SA 0x{self.spi:08x}")
        seq = self.seq + 1
        if seq > SEQ_MAX:
            self.drops["seq_exhausted"] = self.drops.get("seq_exhausted", 0) + 1
            raise EspSequenceExhausted(f"SA 0x{self.spi:08x} used all 2^32-1 sequence numbers")
        self.seq = seq
        n = len(payload)
        padlen = -(n + 2) % self._align
        if next_header == NEXT_HEADER_IPV4:
            trailer = self._trailers[padlen]
        else:
            trailer = _PAD[:padlen] + bytes((padlen, next_header))
        if self._ctxs:
            plain = b"".join((self._random_block(self._block), payload, trailer))
        else:
            plain = b"".join((payload, trailer))
        self.packets += 1
        self.bytes += n
        if now is not None:
            self.last_used = now
        return seq, plain

    def sealed_size(self, prepared: bytes) -> int:
        """Length of the ESP packet ``encrypt_prepared`` makes of ``prepared``."""
        return ESP_HEADER_LEN + len(prepared) + self._icv_len

    def encrypt_prepared(self, seq: int, plain: bytes, lane: int = 0) -> bytearray:
        """The cipher half of ``seal`` for what ``prepare`` returned. Each of the SA's
        ``lanes`` has its own CBC context: different lanes may run in different threads at
        once (ctypes releases the GIL in the cipher; the HMAC is copied per packet)."""
        out = bytearray(_HEADER.pack(self.spi, seq))
        if self._ctxs:
            out += self._ctxs[lane].update(plain)
        else:
            out += plain
        mac = self._mac
        if mac is not None:
            h = mac.copy()
            h.update(out)
            out += h.digest()[: self._icv_len]
        return out

    @property
    def lanes(self) -> int:
        """How many packets of this SA can be encrypted (``encrypt_prepared``) or decrypted
        (``decrypt_authenticated``) at once."""
        return max(1, len(self._ctxs))

    # ------------------------------------------------------------------ inbound
    def open(
        self, packet: bytes | bytearray | memoryview, now: float | None = None
    ) -> tuple[int, bytes]:
        """Verify and decrypt one ESP packet; returns (next_header, inner payload).

        Raises only ``EspError`` subclasses for bad input, each counted in ``drops``.
        A dummy packet (next header 59) returns ``(59, b"")``.
        """
        if self.direction is not Direction.IN:
            raise TypeError(f"open() on outbound SA 0x{self.spi:08x}")
        try:
            return self._open(packet, now)
        except EspError as exc:
            self.drops[exc.reason] = self.drops.get(exc.reason, 0) + 1
            raise

    def _open(self, packet: bytes | bytearray | memoryview, now: float | None) -> tuple[int, bytes]:
        seq, body_end = self._authenticate(packet)
        return self._finish(self.decrypt_authenticated(packet, body_end), seq, now)

    # The three steps of ``open``, for opening a burst with the cipher on two threads
    # (agent/lanes): authenticate and finish in arrival order on one thread,
    # decrypt on any lane. Each step counts its drops like ``open``.
    def authenticate(self, packet: bytes | bytearray | memoryview) -> tuple[int, int]:
        """Check length, SPI, replay window and ICV, and move the window; returns
        (sequence number, end of the ciphertext) for the other two steps."""
        try:
            return self._authenticate(packet)
        except EspError as exc:
            self.drops[exc.reason] = self.drops.get(exc.reason, 0) + 1
            raise

    def decrypt_authenticated(
        self, packet: bytes | bytearray | memoryview, body_end: int, lane: int = 0
    ) -> bytes:
        """IV | ciphertext -> one block to skip | plaintext (no block to skip for NULL).
        Different lanes may run in different threads at once."""
        ctxs = self._ctxs
        if ctxs:
            return ctxs[lane].update(memoryview(packet)[ESP_HEADER_LEN:body_end])
        return bytes(memoryview(packet)[ESP_HEADER_LEN:body_end])

    def finish_open(self, plain: bytes, seq: int, now: float | None = None) -> tuple[int, bytes]:
        """Padding and trailer of a decrypted packet; returns (next header, payload)."""
        try:
            return self._finish(plain, seq, now)
        except EspError as exc:
            self.drops[exc.reason] = self.drops.get(exc.reason, 0) + 1
            raise

    def _authenticate(self, packet: bytes | bytearray | memoryview) -> tuple[int, int]:
        n = len(packet)
        if n < self._min_len:
            raise EspMalformed(
                f"ESP packet of {n} bytes is shorter than the {self._min_len}-byte minimum"
                f" for {self.cipher.name}/{self.integrity.name}"
            )
        body_end = n - self._icv_len
        enc_len = body_end - ESP_HEADER_LEN - self.cipher.iv_len
        if enc_len % self._align:
            raise EspMalformed(
                f"ESP ciphertext at offset {ESP_HEADER_LEN + self.cipher.iv_len} is"
                f" {enc_len} bytes, not a multiple of {self._align}"
            )
        spi, seq = _HEADER.unpack_from(packet, 0)
        if spi != self.spi:
            raise EspUnknownSpi(spi)
        replay = self._replay
        if replay is not None:
            replay.check(seq)  # cheap pre-check; the window moves only after the ICV passed
        mac = self._mac
        if mac is not None:
            view = memoryview(packet)
            h = mac.copy()
            h.update(view[:body_end])
            if not hmac.compare_digest(h.digest()[: self._icv_len], view[body_end:]):
                raise EspAuthFailed(f"ICV mismatch on SPI 0x{spi:08x} seq {seq}")
            if replay is not None:
                replay.update(seq)
        return seq, body_end

    def _finish(self, plain: bytes, seq: int, now: float | None) -> tuple[int, bytes]:
        start = self._block if self._ctxs else 0  # skip the block decrypted from the IV
        end = len(plain)
        padlen = plain[end - 2]
        next_header = plain[end - 1]
        pad_start = end - 2 - padlen
        if pad_start < start:
            raise EspBadPadding(
                f"pad length {padlen} exceeds the {end - start - 2}-byte payload area"
                f" (SPI 0x{self.spi:08x} seq {seq})"
            )
        if padlen and plain[pad_start : end - 2] != _PAD[:padlen]:
            raise EspBadPadding(f"pad bytes are not 1, 2, 3, ... (SPI 0x{self.spi:08x} seq {seq})")
        if now is not None:
            self.last_used = now
        if next_header == NEXT_HEADER_DUMMY:
            self.dummies += 1
            return NEXT_HEADER_DUMMY, b""
        self.packets += 1
        self.bytes += pad_start - start
        return next_header, plain[start:pad_start]

    # ------------------------------------------------------------------ status
    def stats(self) -> dict[str, Any]:
        """JSON-ready counters for status screens (never keys)."""
        return {
            "spi": f"0x{self.spi:08x}",
            "direction": self.direction.value,
            "cipher": self.cipher.name,
            "integrity": self.integrity.name,
            "seq": self.seq if self.direction is Direction.OUT else self.replay_top,
            "packets": self.packets,
            "bytes": self.bytes,
            "dummies": self.dummies,
            "drops": dict(self.drops),
            "created_at": self.created_at,
            "last_used": self.last_used,
        }

    @property
    def replay_top(self) -> int:
        """Highest authenticated inbound sequence number (0 if none or no anti-replay)."""
        return self._replay.top if self._replay is not None else 0


def spi_of(packet: bytes | bytearray | memoryview, offset: int = 0) -> int:
    """SPI of the ESP packet at ``offset``; ``EspMalformed`` if fewer than 8 bytes remain."""
    if len(packet) - offset < ESP_HEADER_LEN:
        raise EspMalformed(
            f"ESP header at offset {offset} needs 8 bytes, only {max(0, len(packet) - offset)}"
        )
    return int.from_bytes(packet[offset : offset + 4], "big")
