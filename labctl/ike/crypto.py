"""Every cryptographic primitive the engine uses, all of it OpenSSL's.

* Hashes and HMAC-based PRFs for MD5 / SHA1 / SHA2-256: the stdlib's ``hashlib``.
* CBC encryption for 3DES and AES (IKE payloads; ESP uses its own package): libcrypto's EVP
  through :mod:`labctl.libcrypto`; cryptography only where libcrypto cannot be loaded.
* MODP Diffie-Hellman (groups 1, 2, 5, 14) behind :func:`modp_exchange`, the single place that
  touches DH: libcrypto's constant-time Montgomery exponentiation, ``pow()`` where libcrypto
  cannot be loaded (``_DH_BACKEND`` below picks).

None of this imports ``cryptography``: the node agent, one Python process per client
container, would pay ~80 ms of CPU for its OpenSSL backend (see labctl/libcrypto.py).
Certificates (labctl/ike/pki.py) still use it, imported where they are used.
"""

from __future__ import annotations

import hashlib
import hmac as _hmac
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .. import libcrypto
from .constants import EspAuth, EspTransform, NotifyType, P1Encryption, P1Hash
from .errors import IkeConfigError, IkeProtocolError

# ---------------------------------------------------------------------------------------------
# Hashes and PRFs

HASH_NAMES: dict[int, str] = {P1Hash.MD5: "md5", P1Hash.SHA1: "sha1", P1Hash.SHA2_256: "sha2-256"}
_HASH_LENGTHS: dict[int, int] = {P1Hash.MD5: 16, P1Hash.SHA1: 20, P1Hash.SHA2_256: 32}


def hash_len(hash_id: int) -> int:
    try:
        return _HASH_LENGTHS[hash_id]
    except KeyError:
        raise IkeConfigError(f"unsupported hash algorithm {hash_id}") from None


# The stdlib's OpenSSL-backed hashlib/hmac one-shots: a cryptography Hash/HMAC object per
# call cost ~3 us against ~0.5 us, and IKE computes ~40 of them per session (bench_ike).
_HASHLIB_NAMES: dict[int, str] = {P1Hash.MD5: "md5", P1Hash.SHA1: "sha1", P1Hash.SHA2_256: "sha256"}


def _hashlib_name(hash_id: int) -> str:
    try:
        return _HASHLIB_NAMES[hash_id]
    except KeyError:
        raise IkeConfigError(f"unsupported hash algorithm {hash_id}") from None


# The hash constructors and the one-shot HMAC of the OpenSSL-backed stdlib module, looked up
# once (``hmac.digest`` is a Python wrapper around this very function; IKE calls it ~40 times
# per session).
_CONSTRUCTORS: dict[int, Callable[[bytes], Any]] = {
    hash_id: getattr(hashlib, name) for hash_id, name in _HASHLIB_NAMES.items()
}
_hmac_digest: Callable[..., bytes]
try:
    from _hashlib import hmac_digest as _hmac_digest
except ImportError:  # a Python without its OpenSSL module: the stdlib's pure-Python HMAC
    _hmac_digest = _hmac.digest


def digest(hash_id: int, *parts: bytes) -> bytes:
    """Plain hash of the concatenated parts (NAT-D, phase-1 IVs)."""
    new = _CONSTRUCTORS.get(hash_id)
    if new is None:
        raise IkeConfigError(f"unsupported hash algorithm {hash_id}")
    return new(b"".join(parts)).digest()


def prf(hash_id: int, key: bytes, *parts: bytes) -> bytes:
    """IKEv1 prf: HMAC with the negotiated hash over the concatenated parts."""
    name = _HASHLIB_NAMES.get(hash_id) or _hashlib_name(hash_id)
    return _hmac_digest(key, b"".join(parts), name)


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class KeyedPrf:
    """``prf(hash_id, key, ...)`` for a key used many times (SKEYID, SKEYID_a, SKEYID_d:
    5-9 HMACs each per session): RFC 2104's inner and outer hash states keyed once, copied
    per call. One-shot HMAC cost ~3.7 us (OpenSSL 3 sets up a keyed context each time);
    two state copies ~1.3 us. Same output as :func:`prf` (tests/unit/ike/test_crypto.py).
    Holds only what the key itself is; lives as long as the keys that made it."""

    __slots__ = ("_inner", "_outer", "hash_id")

    def __init__(self, hash_id: int, key: bytes) -> None:
        new = _CONSTRUCTORS.get(hash_id)
        if new is None:
            raise IkeConfigError(f"unsupported hash algorithm {hash_id}")
        block = new(b"").block_size
        if len(key) > block:
            key = new(key).digest()
        key = key.ljust(block, b"\x00")
        self.hash_id = hash_id
        self._inner = new(key.translate(_IPAD))
        self._outer = new(key.translate(_OPAD))

    def __call__(self, *parts: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(b"".join(parts))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def __repr__(self) -> str:
        return f"KeyedPrf({self.hash_id})"  # never the key


# ---------------------------------------------------------------------------------------------
# Ciphers


@dataclass(frozen=True)
class CipherSpec:
    name: str
    block_size: int
    key_len: int


@lru_cache(maxsize=32)  # a few (id, bits) pairs; each spec is an immutable value
def ike_cipher(enc_id: int, key_bits: int | None) -> CipherSpec:
    """Phase-1 cipher parameters from the SA attributes (encryption + key length)."""
    if enc_id == P1Encryption.TRIPLE_DES_CBC:
        if key_bits not in (None, 192):
            raise IkeConfigError(f"3DES with key length {key_bits}")
        return CipherSpec("3des-cbc", 8, 24)
    if enc_id == P1Encryption.AES_CBC:
        if key_bits not in (128, 192, 256):
            raise IkeConfigError(f"AES-CBC needs key length 128/192/256, got {key_bits}")
        return CipherSpec(f"aes{key_bits}-cbc", 16, key_bits // 8)
    raise IkeConfigError(f"unsupported phase-1 encryption {enc_id}")


@lru_cache(maxsize=32)
def esp_cipher(transform_id: int, key_bits: int | None) -> CipherSpec:
    if transform_id == EspTransform.TRIPLE_DES:
        if key_bits not in (None, 192):
            raise IkeConfigError(f"ESP 3DES with key length {key_bits}")
        return CipherSpec("3des-cbc", 8, 24)
    if transform_id == EspTransform.AES_CBC:
        if key_bits not in (128, 192, 256):
            raise IkeConfigError(f"ESP AES-CBC needs key length 128/192/256, got {key_bits}")
        return CipherSpec(f"aes{key_bits}-cbc", 16, key_bits // 8)
    raise IkeConfigError(f"unsupported ESP transform {transform_id}")


@dataclass(frozen=True)
class IntegritySpec:
    name: str
    key_len: int
    icv_len: int


ESP_INTEGRITY: dict[int, IntegritySpec] = {
    EspAuth.HMAC_MD5: IntegritySpec("hmac-md5-96", 16, 12),
    EspAuth.HMAC_SHA1: IntegritySpec("hmac-sha1-96", 20, 12),
    EspAuth.HMAC_SHA2_256: IntegritySpec("hmac-sha2-256-128", 32, 16),
}


def _check_key(cipher: CipherSpec, key: bytes) -> None:
    if len(key) != cipher.key_len:
        raise IkeProtocolError(f"{cipher.name}: key of {len(key)} bytes")


def _one_shot(cipher: CipherSpec, key: bytes, iv: bytes, data: bytes, *, encrypt: bool) -> bytes:
    _check_key(cipher, key)
    return libcrypto.cbc_context(cipher.name, key, iv, encrypt=encrypt).update(data)


def cbc_encrypt(cipher: CipherSpec, key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    if len(plaintext) % cipher.block_size:
        raise IkeProtocolError("CBC plaintext is not a multiple of the block size")
    return _one_shot(cipher, key, iv, plaintext, encrypt=True)


def _misaligned(ciphertext: bytes, block_size: int) -> IkeProtocolError:
    return IkeProtocolError(
        f"ciphertext of {len(ciphertext)} bytes is not a multiple of the {block_size}-byte block",
        notify=NotifyType.PAYLOAD_MALFORMED,
    )


def cbc_decrypt(cipher: CipherSpec, key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    if not ciphertext or len(ciphertext) % cipher.block_size:
        raise _misaligned(ciphertext, cipher.block_size)
    return _one_shot(cipher, key, iv, ciphertext, encrypt=False)


class CbcCipher:
    """One phase-1 key's CBC with two long-lived contexts (a new context per message cost
    ~8 us of ~2 us work with cryptography; IKE makes ~20 per session): each message
    restarts the chain at its IV and keeps the key schedule. Same output as
    :func:`cbc_encrypt` / :func:`cbc_decrypt` (tests/unit/ike/test_ike_crypto.py)."""

    __slots__ = ("_cipher", "_dec", "_enc", "block_size")

    def __init__(self, cipher: CipherSpec, key: bytes) -> None:
        _check_key(cipher, key)
        self.block_size = cipher.block_size
        self._cipher = cipher
        zero = bytes(cipher.block_size)
        self._enc = libcrypto.cbc_context(cipher.name, key, zero, encrypt=True)
        self._dec = libcrypto.cbc_context(cipher.name, key, zero, encrypt=False)

    def encrypt(self, iv: bytes, plaintext: bytes) -> bytes:
        bs = self.block_size
        if len(plaintext) % bs or len(iv) != bs:
            raise IkeProtocolError("CBC plaintext is not a multiple of the block size")
        return self._enc.update_with_iv(iv, plaintext)

    def decrypt(self, iv: bytes, ciphertext: bytes) -> bytes:
        bs = self.block_size
        if not ciphertext or len(ciphertext) % bs or len(iv) != bs:
            raise _misaligned(ciphertext, bs)
        return self._dec.update_with_iv(iv, ciphertext)

    def __repr__(self) -> str:
        return f"CbcCipher({self._cipher.name})"  # never the key


def random_bytes(n: int) -> bytes:
    return os.urandom(n)


def same_digest(a: bytes, b: bytes) -> bool:
    """Compare a received hash with the expected one in constant time."""
    return _hmac.compare_digest(a, b)


# ---------------------------------------------------------------------------------------------
# MODP Diffie-Hellman (RFC 2409 groups 1 and 2, RFC 3526 groups 5 and 14), generator 2.

_MODP_PREFIX = (
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E34"
    "04DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A6"
)
MODP_PRIMES: dict[int, int] = {
    1: int(_MODP_PREFIX + "3A3620FFFFFFFFFFFFFFFF", 16),
    2: int(
        _MODP_PREFIX + "37ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE653"
        "81FFFFFFFFFFFFFFFF",
        16,
    ),
    5: int(
        _MODP_PREFIX + "37ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B"
        "3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED"
        "529077096966D670C354E4ABC9804F1746C08CA237327FFFFFFFFFFFFFFFF",
        16,
    ),
    14: int(
        _MODP_PREFIX + "37ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B"
        "3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED"
        "529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2"
        "EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AACA"
        "A68FFFFFFFFFFFFFFFF",
        16,
    ),
}
MODP_GENERATOR = 2
MODP_BITS = {1: 768, 2: 1024, 5: 1536, 14: 2048}
_POW_EXPONENT_BITS = {1: 256, 2: 256, 5: 256, 14: 320}

# "libcrypto" (constant-time Montgomery exponentiation, ~8x faster than pow() for group 2)
# or "pow" (where libcrypto cannot be loaded; bench_ike's --dh-backend A/B runs).
_DH_BACKEND = "libcrypto" if libcrypto.load() is not None else "pow"
_MODEXP: dict[int, libcrypto.ModularExponent] = {}


def _modexp(group: int, base: int, exponent: int, plen: int) -> bytes:
    """``base ** exponent mod p`` of the group, big-endian, padded to ``plen`` bytes."""
    if _DH_BACKEND == "libcrypto":
        modexp = _MODEXP.get(group)
        if modexp is None:
            modexp = libcrypto.modular_exponent(MODP_PRIMES[group])
            if modexp is not None:
                _MODEXP[group] = modexp
        if modexp is not None:
            return modexp(base, exponent)
    return pow(base, exponent, MODP_PRIMES[group]).to_bytes(plen, "big")


def modp_length(group: int) -> int:
    """Bytes of a public value / shared secret of ``group``."""
    try:
        return MODP_BITS[group] // 8
    except KeyError:
        raise IkeConfigError(f"unsupported DH group {group}") from None


@dataclass
class DhKeyPair:
    """One side's ephemeral DH key.  The private part stays out of repr()."""

    group: int
    public: bytes  # g^x, big-endian, left-padded to the modulus length
    _private: int = field(repr=False)  # the exponent x


def modp_exchange(group: int, keypair: DhKeyPair | None, peer_public: bytes | None):
    """The single DH entry point.

    * ``modp_exchange(g, None, None)`` -> a new :class:`DhKeyPair`.
    * ``modp_exchange(g, keypair, peer_public)`` -> the shared secret g^xy (bytes, padded).

    Peer public values outside 2..p-2 are refused (small-subgroup / degenerate values).
    """
    plen = modp_length(group)
    p = MODP_PRIMES[group]
    if keypair is None:
        # Short exponents, twice the group's strength (RFC 3526 section 8): far faster
        # than full-size ones and what OpenSSL does for these named groups too.
        bits = _POW_EXPONENT_BITS[group]
        # os.urandom, not secrets: secrets imports random (~15 ms of every agent's start)
        x = int.from_bytes(os.urandom(bits // 8), "big") | (1 << (bits - 1))
        return DhKeyPair(group, _modexp(group, MODP_GENERATOR, x, plen), x)
    if peer_public is None or len(peer_public) != plen:
        raise IkeProtocolError(
            f"DH group {group}: peer public value of "
            f"{0 if peer_public is None else len(peer_public)} bytes, expected {plen}",
            notify=NotifyType.INVALID_KEY_INFORMATION,
        )
    y = int.from_bytes(peer_public, "big")
    if not 1 < y < p - 1:
        raise IkeProtocolError(
            f"DH group {group}: degenerate peer public value",
            notify=NotifyType.INVALID_KEY_INFORMATION,
        )
    if keypair.group != group:
        raise IkeProtocolError(f"DH key of group {keypair.group} used with group {group}")
    return _modexp(group, y, keypair._private, plen)
