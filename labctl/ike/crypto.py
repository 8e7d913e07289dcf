"""Every cryptographic primitive the engine uses, all from ``cryptography``.

* TripleDES comes from :mod:`labctl.cryptocompat`, the one compatibility import (shared with
  ESP) between cryptography 38.0.4 in the containers and the host's newer release.
* Hashes and HMAC-based PRFs for MD5 / SHA1 / SHA2-256.
* CBC encryption for 3DES and AES (IKE payloads; ESP uses its own package).
* MODP Diffie-Hellman (groups 1, 2, 5, 14) behind :func:`modp_exchange`, the single place that
  touches DH: cryptography >= 50 deprecates finite-field DH, so it keeps a pure ``pow()`` path.
  Switching is the one line ``_DH_BACKEND = ...`` below.
"""

from __future__ import annotations

import hashlib
import hmac as _hmac
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives import constant_time
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..cryptocompat import TripleDES
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


def _algorithm(cipher: CipherSpec, key: bytes):
    if len(key) != cipher.key_len:
        raise IkeProtocolError(f"{cipher.name}: key of {len(key)} bytes")
    if cipher.name == "3des-cbc":
        return TripleDES(key)
    return algorithms.AES(key)


def cbc_encrypt(cipher: CipherSpec, key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    if len(plaintext) % cipher.block_size:
        raise IkeProtocolError("CBC plaintext is not a multiple of the block size")
    enc = Cipher(_algorithm(cipher, key), modes.CBC(iv)).encryptor()
    return enc.update(plaintext) + enc.finalize()


def cbc_decrypt(cipher: CipherSpec, key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    if not ciphertext or len(ciphertext) % cipher.block_size:
        raise IkeProtocolError(
            f"ciphertext of {len(ciphertext)} bytes is not a multiple of the "
            f"{cipher.block_size}-byte block",
            notify=NotifyType.PAYLOAD_MALFORMED,
        )
    dec = Cipher(_algorithm(cipher, key), modes.CBC(iv)).decryptor()
    return dec.update(ciphertext) + dec.finalize()


class CbcCipher:
    """One phase-1 key's CBC with long-lived OpenSSL contexts (a new Cipher context per
    message cost ~8 us of ~2 us work; IKE makes ~20 per session).

    * decrypt: CBC decryption is ECB decryption xor the previous ciphertext block: one ECB
      update over the whole message, then one big-integer xor with ``IV | ciphertext``
      minus its last block (no CBC decryption context: each one cost ~13 us to make, two
      phase-1 keys per session).
    * encrypt: the chain must become the message's IV first: feeding ``P0 = D(IV) xor
      chain`` encrypts to exactly ``IV`` (one ECB decryption), then the plaintext follows.

    Every update is block-aligned (checked before), so the contexts never hold a partial
    block. Same output as a fresh CBC context per message (tests/unit/ike/test_crypto.py).
    """

    __slots__ = ("_chain", "_enc", "_raw", "block_size")

    def __init__(self, cipher: CipherSpec, key: bytes) -> None:
        algorithm = _algorithm(cipher, key)
        zero = bytes(cipher.block_size)
        self.block_size = cipher.block_size
        self._enc = Cipher(algorithm, modes.CBC(zero)).encryptor()
        self._raw = Cipher(algorithm, modes.ECB()).decryptor()
        self._chain = zero

    def encrypt(self, iv: bytes, plaintext: bytes) -> bytes:
        bs = self.block_size
        if len(plaintext) % bs or len(iv) != bs:
            raise IkeProtocolError("CBC plaintext is not a multiple of the block size")
        lead = int.from_bytes(self._raw.update(iv), "big") ^ int.from_bytes(self._chain, "big")
        out = self._enc.update(lead.to_bytes(bs, "big") + plaintext)
        self._chain = out[-bs:]
        return out[bs:]

    def decrypt(self, iv: bytes, ciphertext: bytes) -> bytes:
        bs = self.block_size
        if not ciphertext or len(ciphertext) % bs or len(iv) != bs:
            raise IkeProtocolError(
                f"ciphertext of {len(ciphertext)} bytes is not a multiple of the {bs}-byte block",
                notify=NotifyType.PAYLOAD_MALFORMED,
            )
        n = len(ciphertext)
        blocks = int.from_bytes(self._raw.update(ciphertext), "big")
        chain = int.from_bytes(iv + ciphertext[: n - bs], "big")
        return (blocks ^ chain).to_bytes(n, "big")


def random_bytes(n: int) -> bytes:
    return os.urandom(n)


def same_digest(a: bytes, b: bytes) -> bool:
    """Compare a received hash with the expected one in constant time."""
    return constant_time.bytes_eq(a, b)


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

# "cryptography" or "pow".  When cryptography drops finite-field DH, change this one line.
_DH_BACKEND = "cryptography"


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
    _private: object = field(repr=False)


def modp_exchange(group: int, keypair: DhKeyPair | None, peer_public: bytes | None):
    """The single DH entry point.

    * ``modp_exchange(g, None, None)`` -> a new :class:`DhKeyPair`.
    * ``modp_exchange(g, keypair, peer_public)`` -> the shared secret g^xy (bytes, padded).

    Peer public values outside 2..p-2 are refused (small-subgroup / degenerate values).
    """
    plen = modp_length(group)
    p = MODP_PRIMES[group]
    if keypair is None:
        if _DH_BACKEND == "cryptography":
            return _generate_cryptography(group, p, plen)
        # Short exponents, twice the group's strength (RFC 3526 section 8): far faster
        # than full-size ones and what OpenSSL does for these named groups too.
        bits = _POW_EXPONENT_BITS[group]
        x = secrets.randbits(bits) | (1 << (bits - 1))
        return DhKeyPair(group, pow(MODP_GENERATOR, x, p).to_bytes(plen, "big"), x)
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
    if isinstance(keypair._private, int):
        return pow(y, keypair._private, p).to_bytes(plen, "big")
    return _shared_cryptography(group, keypair._private, y, p, plen)


_PARAMS: dict[int, tuple[object, bytes]] = {}


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der_skip_header(der: bytes, pos: int) -> tuple[int, int]:
    """(start of value, end of value) of the DER element at ``pos``."""
    first = der[pos + 1]
    if first < 0x80:
        return pos + 2, pos + 2 + first
    nlen = first & 0x7F
    length = int.from_bytes(der[pos + 2 : pos + 2 + nlen], "big")
    return pos + 2 + nlen, pos + 2 + nlen + length


def _group_parameters(group: int, p: int) -> tuple[object, bytes]:
    """cryptography parameters object and the DER AlgorithmIdentifier of the group."""
    cached = _PARAMS.get(group)
    if cached is None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import dh

        params = dh.DHParameterNumbers(p, MODP_GENERATOR).parameters()
        spki = (
            params.generate_private_key()
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        seq_start, _ = _der_skip_header(spki, 0)
        _, alg_end = _der_skip_header(spki, seq_start)
        cached = (params, spki[seq_start:alg_end])
        _PARAMS[group] = cached
    return cached


def _serialization() -> Any:
    """cryptography's serialization module, imported on first use (a ``from ... import``
    inside the per-session functions ran importlib's fromlist handling on every call)."""
    global _SERIALIZATION
    if _SERIALIZATION is None:
        from cryptography.hazmat.primitives import serialization

        _SERIALIZATION = serialization
    return _SERIALIZATION


_SERIALIZATION: Any = None
# DER up to the value, per (group, value length): PKCS#8 private keys (the exponent's
# length is fixed: its top bit is set) and SubjectPublicKeyInfo peer values (128 or 129
# bytes, fewer with leading zeros). Same bytes as building the TLVs each time.
_PKCS8_PREFIX: dict[tuple[int, int], bytes] = {}
_SPKI_PREFIX: dict[tuple[int, int], bytes] = {}


def _der_prefix(value_len: int, layers: tuple[tuple[int, bytes], ...]) -> bytes:
    """The DER headers in front of a value of ``value_len`` bytes nested in ``layers``
    (innermost first; each a tag and what its content holds before the nested element)."""
    prefix, length = b"", value_len
    for tag, lead in layers:
        header = bytes([tag]) + _der_length(len(lead) + length)
        prefix = header + lead + prefix
        length += len(header) + len(lead)
    return prefix


def _pkcs8_prefix(group: int, p: int, xlen: int) -> bytes:
    """PrivateKeyInfo: SEQUENCE { version 0, AlgorithmIdentifier, OCTET STRING { INTEGER x } }."""
    prefix = _PKCS8_PREFIX.get((group, xlen))
    if prefix is None:
        _, algorithm_id = _group_parameters(group, p)
        layers = ((0x02, b""), (0x04, b""), (0x30, b"\x02\x01\x00" + algorithm_id))
        prefix = _PKCS8_PREFIX[(group, xlen)] = _der_prefix(xlen, layers)
    return prefix


def _spki_prefix(group: int, p: int, ylen: int) -> bytes:
    """SubjectPublicKeyInfo: SEQUENCE { AlgorithmIdentifier, BIT STRING { INTEGER y } }."""
    prefix = _SPKI_PREFIX.get((group, ylen))
    if prefix is None:
        _, algorithm_id = _group_parameters(group, p)
        layers = ((0x02, b""), (0x03, b"\x00"), (0x30, algorithm_id))
        prefix = _SPKI_PREFIX[(group, ylen)] = _der_prefix(ylen, layers)
    return prefix


def _generate_cryptography(group: int, p: int, plen: int) -> DhKeyPair:
    # Our own short exponent (as the pow path), loaded as PKCS#8: OpenSSL computes g^x
    # while loading. generate_private_key() picks a full 1023-bit exponent for group 2 (a
    # prime OpenSSL does not know by name): 4x the cost of both modexps (bench_ike: 0.45 ms
    # per keygen and per exchange -> 0.1 ms each).
    bits = _POW_EXPONENT_BITS[group]
    x = secrets.randbits(bits) | (1 << (bits - 1))
    xlen = (x.bit_length() + 8) // 8
    pkcs8 = _pkcs8_prefix(group, p, xlen) + x.to_bytes(xlen, "big")
    private = _serialization().load_der_private_key(pkcs8, None)
    y = private.public_key().public_numbers().y
    return DhKeyPair(group, y.to_bytes(plen, "big"), private)


def _shared_cryptography(group: int, private: object, y: int, p: int, plen: int) -> bytes:
    # Load the peer value as SubjectPublicKeyInfo DER: cryptography 46 re-validates the
    # (non-"named") 768/1024-bit primes on every DHPublicNumbers.public_key(), ~30 ms each.
    ylen = (y.bit_length() + 8) // 8
    spki = _spki_prefix(group, p, ylen) + y.to_bytes(ylen, "big")
    peer = _serialization().load_der_public_key(spki)
    secret = private.exchange(peer)  # type: ignore[attr-defined]
    return secret.rjust(plen, b"\x00")
