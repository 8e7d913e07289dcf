"""Test helpers: key material, forced IVs through the real hot path, hand-built packets."""

from __future__ import annotations

import hashlib
import hmac
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, modes

from labctl.esp import EspSa, cipher_spec, integrity_spec


def keys(cipher: str, integrity: str, label: str = "k") -> tuple[bytes, bytes]:
    c, i = cipher_spec(cipher), integrity_spec(integrity)
    seed = hashlib.sha512(f"{label}/{cipher}/{integrity}".encode()).digest()
    return seed[: c.key_len], seed[32 : 32 + i.key_len]


def sa_pair(cipher: str, integrity: str, spi: int = 0x1000, **kw) -> tuple[EspSa, EspSa]:
    ek, ak = keys(cipher, integrity)
    return (
        EspSa.outbound(spi, cipher, integrity, ek, ak),
        EspSa.inbound(spi, cipher, integrity, ek, ak, **kw),
    )


class ForcedIv:
    """``random_block`` source that makes a FRESH outbound SA emit a chosen IV first.

    The SA's CBC chain starts at zero, and the sent IV is E(R xor chain), so R = D(IV).
    """

    def __init__(self, cipher: str, enc_key: bytes, iv: bytes) -> None:
        algo = cipher_spec(cipher).factory
        assert algo is not None
        ecb = Cipher(algo(enc_key), modes.ECB()).decryptor()
        self._r = ecb.update(iv)

    def __call__(self, n: int) -> bytes:
        assert n == len(self._r)
        return self._r


def build_esp(
    cipher: str,
    integrity: str,
    enc_key: bytes,
    auth_key: bytes,
    spi: int,
    seq: int,
    iv: bytes,
    plaintext: bytes,
) -> bytes:
    """ESP packet from an arbitrary (already padded) plaintext, with a valid ICV.

    Used to make authenticated packets with broken padding, which seal() cannot produce.
    """
    c, i = cipher_spec(cipher), integrity_spec(integrity)
    if c.factory is None:
        body = plaintext
    else:
        body = Cipher(c.factory(enc_key), modes.CBC(iv)).encryptor().update(plaintext)
    out = struct.pack("!II", spi, seq) + iv + body
    if i.digest is not None:
        out += hmac.new(auth_key, out, i.digest).digest()[: i.icv_len]
    return out
