"""IKEv1 key derivation and authentication hashes (RFC 2409 sections 5, 5.5, 5.7, appendix B;
NAT-D from RFC 3947 section 3.2).

Pure functions of bytes.  ``hash_id`` is the negotiated phase-1 hash (P1Hash); every prf is
HMAC with that hash.  Naming follows RFC 2409: ``ni_b`` / ``nr_b`` are nonce payload bodies,
``gxi`` / ``gxr`` the public DH values, ``gxy`` the shared secret (all zero-padded to the
modulus length), ``sai_b`` the initiator's SA payload body and ``idii_b`` / ``idir_b`` the ID
payload bodies (generic headers excluded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from .addrs import packed_ip
from .crypto import CipherSpec, KeyedPrf, digest, hash_len, prf

# A key as bytes, or already keyed (Phase1Keys' prf_* for keys used many times per SA).
PrfKey = bytes | KeyedPrf


def _prf(hash_id: int, key: PrfKey, *parts: bytes) -> bytes:
    if isinstance(key, KeyedPrf):
        return key(*parts)
    return prf(hash_id, key, *parts)


def skeyid_psk(hash_id: int, psk: bytes, ni_b: bytes, nr_b: bytes) -> bytes:
    """SKEYID for pre-shared-key authentication (also XAUTH-PSK 65001/65002)."""
    return prf(hash_id, psk, ni_b, nr_b)


def skeyid_signature(hash_id: int, ni_b: bytes, nr_b: bytes, g_xy: bytes) -> bytes:
    """SKEYID for signature authentication (also hybrid): prf(Ni_b | Nr_b, g^xy)."""
    return prf(hash_id, ni_b + nr_b, g_xy)


def expand_key(hash_id: int, skeyid_e: bytes, key_len: int) -> bytes:
    """Encryption key from SKEYID_e (RFC 2409 appendix B): truncate, or expand with
    K1 = prf(SKEYID_e, 0), Kn = prf(SKEYID_e, Kn-1) when SKEYID_e is too short."""
    if len(skeyid_e) >= key_len:
        return skeyid_e[:key_len]
    out = b""
    block = b"\x00"
    while len(out) < key_len:
        block = prf(hash_id, skeyid_e, block)
        out += block
    return out[:key_len]


@dataclass(frozen=True)
class Phase1Keys:
    """Everything phase 1 derives.  Secret fields are excluded from repr()."""

    hash_id: int
    cipher: CipherSpec
    skeyid: bytes = field(repr=False)
    skeyid_d: bytes = field(repr=False)
    skeyid_a: bytes = field(repr=False)
    skeyid_e: bytes = field(repr=False)
    enc_key: bytes = field(repr=False)

    # The keys used again and again (HASH_I/R, every phase-2 HASH, KEYMAT), keyed once.
    @cached_property
    def prf_skeyid(self) -> KeyedPrf:
        return KeyedPrf(self.hash_id, self.skeyid)

    @cached_property
    def prf_a(self) -> KeyedPrf:
        return KeyedPrf(self.hash_id, self.skeyid_a)

    @cached_property
    def prf_d(self) -> KeyedPrf:
        return KeyedPrf(self.hash_id, self.skeyid_d)


def derive_phase1(
    hash_id: int,
    cipher: CipherSpec,
    skeyid: bytes,
    gxy: bytes,
    icookie: bytes,
    rcookie: bytes,
) -> Phase1Keys:
    keyed = KeyedPrf(hash_id, skeyid)
    skeyid_d = keyed(gxy, icookie, rcookie, b"\x00")
    skeyid_a = keyed(skeyid_d, gxy, icookie, rcookie, b"\x01")
    skeyid_e = keyed(skeyid_a, gxy, icookie, rcookie, b"\x02")
    enc_key = expand_key(hash_id, skeyid_e, cipher.key_len)
    keys = Phase1Keys(hash_id, cipher, skeyid, skeyid_d, skeyid_a, skeyid_e, enc_key)
    vars(keys)["prf_skeyid"] = keyed  # what the cached property would make again
    return keys


def hash_i(
    hash_id: int,
    skeyid: PrfKey,
    gxi: bytes,
    gxr: bytes,
    icookie: bytes,
    rcookie: bytes,
    sai_b: bytes,
    idii_b: bytes,
) -> bytes:
    return _prf(hash_id, skeyid, gxi, gxr, icookie, rcookie, sai_b, idii_b)


def hash_r(
    hash_id: int,
    skeyid: PrfKey,
    gxi: bytes,
    gxr: bytes,
    icookie: bytes,
    rcookie: bytes,
    sai_b: bytes,
    idir_b: bytes,
) -> bytes:
    return _prf(hash_id, skeyid, gxr, gxi, rcookie, icookie, sai_b, idir_b)


def phase1_iv(hash_id: int, gxi: bytes, gxr: bytes, block_size: int) -> bytes:
    """IV of the first encrypted phase-1 message: hash(g^xi | g^xr) truncated."""
    return digest(hash_id, gxi, gxr)[:block_size]


def exchange_iv(hash_id: int, p1_last_block: bytes, message_id: int, block_size: int) -> bytes:
    """IV of the first message of a phase-2 / transaction / informational exchange:
    hash(last phase-1 ciphertext block | M-ID) truncated (RFC 2409 appendix B)."""
    return digest(hash_id, p1_last_block, message_id.to_bytes(4, "big"))[:block_size]


def qm_hash1(hash_id: int, skeyid_a: PrfKey, message_id: int, after_hash: bytes) -> bytes:
    """HASH(1) of quick mode, also the hash of transaction and informational messages."""
    return _prf(hash_id, skeyid_a, message_id.to_bytes(4, "big"), after_hash)


def qm_hash2(
    hash_id: int, skeyid_a: PrfKey, message_id: int, ni_b: bytes, after_hash: bytes
) -> bytes:
    return _prf(hash_id, skeyid_a, message_id.to_bytes(4, "big"), ni_b, after_hash)


def qm_hash3(hash_id: int, skeyid_a: PrfKey, message_id: int, ni_b: bytes, nr_b: bytes) -> bytes:
    return _prf(hash_id, skeyid_a, b"\x00", message_id.to_bytes(4, "big"), ni_b, nr_b)


def empty_informational_hash(hash_id: int, skeyid_a: PrfKey, message_id: int) -> bytes:
    """vpnc's keepalive: an Informational with only a HASH = prf(SKEYID_a, 0x00 | M-ID)."""
    return _prf(hash_id, skeyid_a, b"\x00", message_id.to_bytes(4, "big"))


def keymat(
    hash_id: int,
    skeyid_d: PrfKey,
    protocol: int,
    spi: bytes,
    ni_b: bytes,
    nr_b: bytes,
    length: int,
    gqm: bytes | None = None,
) -> bytes:
    """KEYMAT for one direction of an IPsec SA (RFC 2409 section 5.5): the SPI is the one
    chosen by that SA's receiver; ``gqm`` is the quick-mode DH secret when PFS is used."""
    seed = (gqm or b"") + bytes([protocol]) + spi + ni_b + nr_b
    out = b""
    block = b""
    while len(out) < length:
        block = _prf(hash_id, skeyid_d, block, seed)
        out += block
    return out[:length]


def natd_hash(hash_id: int, icookie: bytes, rcookie: bytes, ip: str, port: int) -> bytes:
    """NAT-D payload value: HASH(CKY-I | CKY-R | IP | Port), plain negotiated hash."""
    return digest(hash_id, icookie, rcookie, packed_ip(ip), port.to_bytes(2, "big"))


def prf_len(hash_id: int) -> int:
    return hash_len(hash_id)
