"""3DES-CBC decryption through libgcrypt, for inbound ESP.

Why: CBC decryption can work on several blocks at once, and libgcrypt's x86-64 3DES does
(three blocks in parallel, in assembly); OpenSSL's does one block at a time. Measured in the
vpn image on 1408-byte packets: libgcrypt 21-32 us against OpenSSL (Debian's cryptography
38) 80-96 us. 3DES is where the data path is bound by the cipher, so the receiving end of a
3DES tunnel gets most of its time back. Encryption is serial in CBC: libgcrypt is no faster
there (66-88 vs 78-84 us), so sealing stays on OpenSSL.

libgcrypt is in every image already (vpnc, libsystemd0 and libapt-pkg depend on it). Where
it cannot be loaded, or with LABCTL_GCRYPT=0 in the environment (A/B runs), `decryptor`
returns None and the caller keeps OpenSSL.

The object mimics what `EspSa._open` feeds a long-lived OpenSSL decryptor: ``update(IV |
ciphertext)`` returns one block to skip followed by the plaintext.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

from labctl.libcrypto import open_library

_GCRY_CIPHER_3DES = 2  # gcrypt.h
_GCRY_CIPHER_MODE_CBC = 3
_GCRYCTL_DISABLE_SECMEM = 37
_GCRYCTL_INITIALIZATION_FINISHED = 38
_BLOCK = 8
_MAX_PACKET = 65536
_FIRST_BUFFER = 2048


def _declare(lib: Any) -> bool:
    """Signatures, and libgcrypt initialised (secure memory off: the keys already live in
    Python)."""
    lib.gcry_check_version.restype = ctypes.c_char_p
    if not lib.gcry_check_version(None):
        return False
    lib.gcry_control(_GCRYCTL_DISABLE_SECMEM, 0)
    lib.gcry_control(_GCRYCTL_INITIALIZATION_FINISHED, 0)
    for fn in (lib.gcry_cipher_setiv, lib.gcry_cipher_decrypt, lib.gcry_cipher_setkey):
        fn.restype = ctypes.c_uint
    lib.gcry_cipher_setiv.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
    lib.gcry_cipher_decrypt.argtypes = (
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_void_p,
        ctypes.c_size_t,
    )
    return True


@functools.cache
def _load() -> Any:
    """libgcrypt, once per process, or None."""
    return open_library(("libgcrypt.so.20",), "LABCTL_GCRYPT", "gcrypt", _declare)


class Gcrypt3desCbcDecryptor:
    """One SA's 3DES key in a libgcrypt handle; ``update`` takes IV | ciphertext."""

    __slots__ = ("_capacity", "_decrypt", "_handle", "_lib", "_out", "_out_address", "_setiv")

    def __init__(self, lib: Any, key: bytes) -> None:
        self._lib = lib
        self._handle = handle = ctypes.c_void_p()  # null until opened: close() skips it
        if lib.gcry_cipher_open(ctypes.byref(handle), _GCRY_CIPHER_3DES, _GCRY_CIPHER_MODE_CBC, 0):
            raise OSError("libgcrypt refused to open a 3DES-CBC handle")
        if lib.gcry_cipher_setkey(handle, key, len(key)):
            self.close()
            raise ValueError("libgcrypt refused the 3DES key")
        self._setiv = lib.gcry_cipher_setiv
        self._decrypt = lib.gcry_cipher_decrypt
        self._grow(_FIRST_BUFFER)

    def _grow(self, size: int) -> None:
        # grows to the largest packet seen (see labctl.libcrypto: RSS per SA and lane)
        self._out = ctypes.create_string_buffer(size)
        self._out_address = ctypes.addressof(self._out)
        self._capacity = size

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        """Block-aligned IV | ciphertext -> one block to skip | plaintext."""
        source = bytes(data)
        size = len(source)
        if size % _BLOCK or not _BLOCK <= size <= _MAX_PACKET:
            raise ValueError(f"3DES-CBC input of {size} bytes is not whole blocks")
        if size > self._capacity:
            self._grow(size)
        address = ctypes.cast(ctypes.c_char_p(source), ctypes.c_void_p).value or 0
        self._setiv(self._handle, address, _BLOCK)
        body = size - _BLOCK
        if self._decrypt(self._handle, self._out_address + _BLOCK, body, address + _BLOCK, body):
            raise ValueError("libgcrypt failed to decrypt")
        return ctypes.string_at(self._out_address, size)

    def close(self) -> None:
        if self._handle:
            self._lib.gcry_cipher_close(self._handle)
            self._handle = ctypes.c_void_p()

    def __del__(self) -> None:
        self.close()


def decryptor_3des(key: bytes) -> Gcrypt3desCbcDecryptor | None:
    """A libgcrypt 3DES-CBC decryptor for ``key``, or None to keep OpenSSL."""
    lib = _load()
    if lib is None:
        return None
    try:
        return Gcrypt3desCbcDecryptor(lib, key)
    except (OSError, ValueError):
        return None
