"""libgcrypt's 3DES-CBC decryption (inbound ESP) gives OpenSSL's plaintext, byte for byte."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from labctl.cryptocompat import TripleDES
from labctl.esp import gcrypt_cbc
from labctl.esp.gcrypt_cbc import Gcrypt3desCbcDecryptor, decryptor_3des
from labctl.esp.sa import EspSa

KEY = bytes.fromhex("0123456789abcdef23456789abcdef01456789abcdef0123")


def _openssl_plaintext(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    context = Cipher(TripleDES(key), modes.CBC(iv)).decryptor()
    return context.update(ciphertext) + context.finalize()


def test_the_images_library_is_found_here() -> None:
    # libgcrypt20 is a dependency of apt on every Debian host and image: finding none would
    # quietly send 3DES back to OpenSSL, so say so.
    assert isinstance(decryptor_3des(KEY), Gcrypt3desCbcDecryptor)


@pytest.mark.parametrize("size", [8, 16, 1400, 1456, 8 * 1024])
def test_decryption_matches_openssl_for_unrelated_ivs(size: int) -> None:
    decryptor = decryptor_3des(KEY)
    assert decryptor is not None
    for _ in range(5):
        iv, plain = os.urandom(8), os.urandom(size)
        encryptor = Cipher(TripleDES(KEY), modes.CBC(iv)).encryptor()
        ciphertext = encryptor.update(plain) + encryptor.finalize()
        assert _openssl_plaintext(KEY, iv, ciphertext) == plain
        out = decryptor.update(memoryview(iv + ciphertext))
        assert len(out) == 8 + size and out[8:] == plain


def test_one_decryptor_grows_its_buffer_and_shrinks_nothing() -> None:
    """The output buffer starts small (one per inbound 3DES SA and lane) and grows."""
    decryptor = decryptor_3des(KEY)
    assert decryptor is not None and decryptor._capacity <= 2048
    for size in (1400, 8192, 16, 65536 - 8, 1400):
        iv, plain = os.urandom(8), os.urandom(size)
        encryptor = Cipher(TripleDES(KEY), modes.CBC(iv)).encryptor()
        assert decryptor.update(iv + encryptor.update(plain))[8:] == plain
    assert decryptor._capacity == 65536


def test_misaligned_input_is_refused_and_the_next_packet_is_unharmed() -> None:
    decryptor = decryptor_3des(KEY)
    assert decryptor is not None
    with pytest.raises(ValueError, match="not whole blocks"):
        decryptor.update(bytes(21))
    iv, plain = bytes(8), b"A" * 64
    encryptor = Cipher(TripleDES(KEY), modes.CBC(iv)).encryptor()
    assert decryptor.update(iv + encryptor.update(plain))[8:] == plain


def test_inbound_3des_sa_uses_libgcrypt_and_opens_what_an_openssl_sa_sealed() -> None:
    auth = bytes(16)
    out = EspSa.outbound(0x1234, "3des-cbc", "hmac-md5-96", KEY, auth)
    inbound = EspSa.inbound(0x1234, "3des-cbc", "hmac-md5-96", KEY, auth)
    assert isinstance(inbound._ctx, Gcrypt3desCbcDecryptor)
    payloads = [os.urandom(n) for n in (20, 1400, 77, 1)]
    for payload in payloads:
        assert inbound.open(out.seal(payload)) == (4, payload)


def test_switched_off_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABCTL_GCRYPT", "0")
    gcrypt_cbc._load.cache_clear()
    try:
        assert decryptor_3des(KEY) is None
        inbound = EspSa.inbound(0x1234, "3des-cbc", "hmac-md5-96", KEY, bytes(16))
        assert not isinstance(inbound._ctx, Gcrypt3desCbcDecryptor)
        out = EspSa.outbound(0x1234, "3des-cbc", "hmac-md5-96", KEY, bytes(16))
        assert inbound.open(out.seal(b"x" * 100)) == (4, b"x" * 100)
    finally:
        gcrypt_cbc._load.cache_clear()  # later tests load it again
