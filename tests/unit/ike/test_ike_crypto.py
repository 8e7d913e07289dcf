"""Primitives and key derivation against published vectors and a second implementation.

The second implementation here uses Python's hashlib/hmac (test code only): it recomputes
RFC 2409's formulas independently of labctl.ike.keys, so a wiring mistake in one shows up.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from labctl.cryptocompat import TripleDES
from labctl.ike import crypto, keys, vendor
from labctl.ike.constants import P1Encryption, P1Hash
from labctl.ike.errors import IkeProtocolError


# -- vendor IDs: hex values published by vpnc / strongSwan / the seed's logs -----------------
def test_vendor_ids_match_published_values() -> None:
    assert vendor.NATT_VIDS[vendor.NattVersion.RFC3947].hex() == "4a131c81070358455c5728f20e95452f"
    assert vendor.NATT_VIDS[vendor.NattVersion.DRAFT_03].hex() == "7d9419a65310ca6f2c179d9215529d56"
    assert vendor.NATT_VIDS[vendor.NattVersion.DRAFT_02].hex() == "cd60464335df21f87cfdb2fc68b6a448"
    # seed log line 52
    assert (
        vendor.NATT_VIDS[vendor.NattVersion.DRAFT_02N].hex() == "90cb80913ebb696e086381b5ec427b1f"
    )
    assert vendor.VID_XAUTH.hex() == "09002689dfd6b712"  # seed line 48
    assert vendor.VID_DPD.hex() == "afcad71368a1f1c96b8696fc77570100"  # seed line 50
    assert vendor.VID_CISCO_UNITY.hex() == "12f5f28c457168a9702d9fe274cc0100"  # seed line 46
    assert vendor.vpn3000_vid(3, 6).hex() == "1f07f70eaa6514d3b0fa96542a500306"  # seed line 56
    assert vendor.fragmentation_vid().hex() == "4048b7d56ebce88525e7de7f00d6c2d3c0000000"  # l. 54


def test_classify_vendor_ids() -> None:
    info = vendor.classify_vendor_ids(
        [
            vendor.VID_XAUTH,
            vendor.VID_CISCO_UNITY,
            vendor.NATT_VIDS[vendor.NattVersion.DRAFT_02N],
            vendor.vpn3000_vid(4, 7),
            vendor.fragmentation_vid(),
            b"unknown!",
        ]
    )
    assert info.xauth and info.unity and info.fragmentation and info.vpn3000 == (4, 7)
    assert info.natt_versions == (vendor.NattVersion.DRAFT_02N,)
    assert info.unknown == (b"unknown!",)


# -- MODP groups ---------------------------------------------------------------------------------
@pytest.mark.parametrize("group,bits", [(1, 768), (2, 1024), (5, 1536), (14, 2048)])
def test_modp_group_shape(group: int, bits: int) -> None:
    p = crypto.MODP_PRIMES[group]
    assert p.bit_length() == bits
    assert p >> (bits - 64) == 0xFFFFFFFFFFFFFFFF and p & 0xFFFFFFFFFFFFFFFF == 0xFFFFFFFFFFFFFFFF
    # 2 generates the prime-order subgroup of these safe primes: 2^((p-1)/2) == 1 mod p
    assert pow(2, (p - 1) // 2, p) == 1


@pytest.mark.parametrize("group", [1, 2, 5, 14])
def test_dh_backends_agree(group: int, monkeypatch) -> None:
    assert crypto._DH_BACKEND == "libcrypto"  # libcrypto loads here as on the nodes
    a = crypto.modp_exchange(group, None, None)
    p, plen = crypto.MODP_PRIMES[group], crypto.modp_length(group)
    assert a.public == pow(2, a._private, p).to_bytes(plen, "big")
    monkeypatch.setattr(crypto, "_DH_BACKEND", "pow")
    b = crypto.modp_exchange(group, None, None)
    assert len(a.public) == len(b.public) == crypto.modp_length(group)
    s1 = crypto.modp_exchange(group, a, b.public)
    s2 = crypto.modp_exchange(group, b, a.public)
    assert s1 == s2 and len(s1) == crypto.modp_length(group)
    x = b._private
    assert s1 == pow(int.from_bytes(a.public, "big"), x, crypto.MODP_PRIMES[group]).to_bytes(
        crypto.modp_length(group), "big"
    )


def test_dh_rejects_degenerate_values() -> None:
    a = crypto.modp_exchange(2, None, None)
    p = crypto.MODP_PRIMES[2]
    for bad in (0, 1, p - 1, p, p + 1):
        with pytest.raises(IkeProtocolError):
            crypto.modp_exchange(2, a, bad.to_bytes(129, "big")[-128:] if bad < 2**1024 else b"")
    with pytest.raises(IkeProtocolError):
        crypto.modp_exchange(2, a, b"\x05" * 127)
    assert "_private" not in repr(a) and "public" in repr(a)


# -- PRF / ciphers against RFC vectors -------------------------------------------------------------
def test_prf_rfc2202_and_rfc4231() -> None:
    key = b"\x0b" * 16
    assert crypto.prf(P1Hash.MD5, key, b"Hi There").hex() == "9294727a3638bb1c13f48ef8158bfc9d"
    key = b"\x0b" * 20
    assert crypto.prf(P1Hash.SHA1, key, b"Hi ", b"There").hex() == (
        "b617318655057264e28bc0b6fb378c8ef146be00"
    )
    assert crypto.prf(P1Hash.SHA2_256, key, b"Hi There").hex() == (
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    )


def test_aes_cbc_sp800_38a_f21(cbc_backend) -> None:
    key = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
    iv = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
    pt = bytes.fromhex("6bc1bee22e409f96e93d7e117393172a")
    spec = crypto.ike_cipher(P1Encryption.AES_CBC, 128)
    ct = crypto.cbc_encrypt(spec, key, iv, pt)
    assert ct.hex() == "7649abac8119b246cee98e9b12e9197d"
    assert crypto.cbc_decrypt(spec, key, iv, ct) == pt


def test_3des_cbc_roundtrip_and_block_rules(cbc_backend) -> None:
    spec = crypto.ike_cipher(P1Encryption.TRIPLE_DES_CBC, None)
    key = bytes(range(24))
    ct = crypto.cbc_encrypt(spec, key, b"\x01" * 8, b"A" * 16)
    assert len(ct) == 16 and crypto.cbc_decrypt(spec, key, b"\x01" * 8, ct) == b"A" * 16
    with pytest.raises(IkeProtocolError):
        crypto.cbc_decrypt(spec, key, b"\x01" * 8, ct[:-1])


def _reference_cbc(spec: crypto.CipherSpec, key: bytes, iv: bytes, *, encrypt: bool):
    """A fresh cryptography CBC context: the independent reference."""
    algorithm = TripleDES(key) if spec.name == "3des-cbc" else algorithms.AES(key)
    cbc = Cipher(algorithm, modes.CBC(iv))
    return cbc.encryptor() if encrypt else cbc.decryptor()


@pytest.mark.parametrize(
    ("enc", "bits", "key_len"),
    [
        (P1Encryption.AES_CBC, 128, 16),
        (P1Encryption.AES_CBC, 256, 32),
        (P1Encryption.TRIPLE_DES_CBC, None, 24),
    ],
)
def test_long_lived_cbc_contexts_match_a_fresh_context_per_message(
    enc, bits, key_len, cbc_backend
) -> None:
    """CbcCipher reuses its contexts across messages with unrelated IVs: every message must
    come out exactly as a fresh CBC context makes it, both ways, and a misaligned message is
    refused without disturbing the next one."""
    spec = crypto.ike_cipher(enc, bits)
    key = bytes(range(7, 7 + key_len))
    cbc = crypto.CbcCipher(spec, key)
    assert key.hex() not in repr(cbc)
    bs = spec.block_size
    for n in range(1, 8):
        iv = bytes((n * 37 + i) & 0xFF for i in range(bs))
        pt = bytes((n + i) & 0xFF for i in range(n * bs))
        ct = cbc.encrypt(iv, pt)
        assert ct == _reference_cbc(spec, key, iv, encrypt=True).update(pt)
        assert ct == crypto.cbc_encrypt(spec, key, iv, pt)
        assert cbc.decrypt(iv, ct) == pt
        with pytest.raises(IkeProtocolError):
            cbc.decrypt(iv, ct[:-1])
        with pytest.raises(IkeProtocolError):
            cbc.encrypt(iv, pt + b"x")


@pytest.mark.parametrize(
    ("enc", "bits", "key_len"),
    [
        (P1Encryption.AES_CBC, 128, 16),
        (P1Encryption.AES_CBC, 192, 24),
        (P1Encryption.TRIPLE_DES_CBC, None, 24),
    ],
)
def test_cbc_decrypt_of_arbitrary_ciphertext_matches_a_fresh_context(
    enc, bits, key_len, cbc_backend
) -> None:
    """CbcCipher's decryption gives what a fresh CBC decryptor gives for any ciphertext (not
    only ours), with leading zero bytes kept, interleaved with encryptions."""
    spec = crypto.ike_cipher(enc, bits)
    key = bytes(range(3, 3 + key_len))
    cbc = crypto.CbcCipher(spec, key)
    bs = spec.block_size
    for n in range(1, 12):
        iv = bytes((n * 11 + i) & 0xFF for i in range(bs))
        ct = bytes((n * 53 + i * 7) & 0xFF for i in range(n * bs))
        pt = _reference_cbc(spec, key, iv, encrypt=False).update(ct)
        assert cbc.decrypt(iv, ct) == pt == crypto.cbc_decrypt(spec, key, iv, ct)
        # a plaintext starting with zero bytes
        zero_led = bytes(bs) + pt[bs:]
        assert cbc.decrypt(iv, cbc.encrypt(iv, zero_led)) == zero_led
        assert cbc.encrypt(iv, pt) == ct


# -- RFC 2409 derivations vs an independent hashlib/hmac rendering --------------------------------
def _h(name, key, *parts):
    return hmac.new(key, b"".join(parts), name).digest()


@pytest.mark.parametrize(
    "hash_id,name,key_len",
    [
        (P1Hash.MD5, "md5", 24),
        (P1Hash.SHA1, "sha1", 24),
        (P1Hash.SHA1, "sha1", 32),
        (P1Hash.SHA2_256, "sha256", 32),
        (P1Hash.SHA2_256, "sha256", 16),
    ],
)
def test_phase1_derivation_matches_rfc2409(hash_id, name, key_len) -> None:
    psk, ni, nr = b"grouppassword", b"\x01" * 20, b"\x02" * 20
    gxy, ci, cr = bytes(range(128)), b"\xaa" * 8, b"\xbb" * 8
    skeyid = keys.skeyid_psk(hash_id, psk, ni, nr)
    assert skeyid == _h(name, psk, ni, nr)
    cipher = crypto.CipherSpec("x", 8, key_len)
    k = keys.derive_phase1(hash_id, cipher, skeyid, gxy, ci, cr)
    d = _h(name, skeyid, gxy, ci, cr, b"\x00")
    a = _h(name, skeyid, d, gxy, ci, cr, b"\x01")
    e = _h(name, skeyid, a, gxy, ci, cr, b"\x02")
    assert (k.skeyid_d, k.skeyid_a, k.skeyid_e) == (d, a, e)
    if len(e) >= key_len:
        assert k.enc_key == e[:key_len]
    else:
        k1 = _h(name, e, b"\x00")
        k2 = _h(name, e, k1)
        assert k.enc_key == (k1 + k2)[:key_len]
    assert repr(k.skeyid) not in repr(k) and repr(k.enc_key) not in repr(k)


def test_keymat_expansion_and_ivs() -> None:
    d = b"\x11" * 20
    km = keys.keymat(P1Hash.SHA1, d, 3, b"\x00\x00\x10\x00", b"N" * 20, b"M" * 20, 52)
    seed = b"\x03" + b"\x00\x00\x10\x00" + b"N" * 20 + b"M" * 20
    k1 = _h("sha1", d, seed)
    k2 = _h("sha1", d, k1, seed)
    k3 = _h("sha1", d, k2, seed)
    assert km == (k1 + k2 + k3)[:52]
    pfs = keys.keymat(P1Hash.SHA1, d, 3, b"\x00\x00\x10\x00", b"N" * 20, b"M" * 20, 20, b"G" * 8)
    assert pfs == _h("sha1", d, b"G" * 8 + seed)
    assert keys.phase1_iv(P1Hash.MD5, b"x", b"y", 8) == hashlib.md5(b"xy").digest()[:8]
    assert (
        keys.exchange_iv(P1Hash.SHA1, b"L" * 16, 0x347A7363, 16)
        == hashlib.sha1(b"L" * 16 + bytes.fromhex("347a7363")).digest()[:16]
    )
    assert keys.qm_hash3(P1Hash.MD5, b"k", 5, b"i", b"r") == _h(
        "md5", b"k", b"\x00", b"\x00\x00\x00\x05", b"i", b"r"
    )
    assert (
        keys.natd_hash(P1Hash.SHA1, b"c" * 8, b"r" * 8, "171.69.89.78", 4500)
        == hashlib.sha1(
            b"c" * 8 + b"r" * 8 + bytes([171, 69, 89, 78]) + (4500).to_bytes(2, "big")
        ).digest()
    )
