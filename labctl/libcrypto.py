"""OpenSSL's libcrypto through ctypes: long-lived CBC contexts and modular exponentiation.

Why not ``cryptography`` here: every node agent is its own Python process, and importing
cryptography's OpenSSL backend cost ~70-90 ms of CPU per agent in the vpn image (it pulls in
x509, email and every primitive): 200 client containers took 80.5 CPU-s to come up with it
and 70.9 without (bench_scale, same run). The agent needs only CBC and MODP DH; libcrypto is
already in every process that has ``hashlib`` (``_hashlib`` links it), so loading it costs
about nothing. cryptography stays for certificates and the host side.

Calls go through ctypes' ``CDLL``, which releases the GIL: two ESP lanes encrypt on two
cores as they did with cryptography's contexts. Where libcrypto cannot be loaded, or with
LABCTL_LIBCRYPTO=0 in the environment (A/B runs, the fallback's tests), :func:`load` returns
None and callers keep cryptography (ciphers) or ``pow()`` (DH).
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable
from typing import Any

# The longest single update: an ESP packet (IPv4 total length) plus one lead block.
MAX_UPDATE = 65536 + 16
# A context's output buffer starts at this and grows to the largest update it has seen: a
# full-size buffer per context would cost 64 KiB of RSS per direction and lane of every SA
# and per phase-1 key (a fleet holds thousands of them); packets and IKE messages fit here.
_FIRST_BUFFER = 2048

_c_void_p, _c_int, _c_char_p = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p

# Our cipher names -> libcrypto's EVP_CIPHER getter (functions that take no argument).
_CIPHER_GETTERS = {
    "aes128-cbc": "EVP_aes_128_cbc",
    "aes192-cbc": "EVP_aes_192_cbc",
    "aes256-cbc": "EVP_aes_256_cbc",
    "3des-cbc": "EVP_des_ede3_cbc",
}
BLOCK_SIZES = {"aes128-cbc": 16, "aes192-cbc": 16, "aes256-cbc": 16, "3des-cbc": 8}
KEY_LENGTHS = {"aes128-cbc": 16, "aes192-cbc": 24, "aes256-cbc": 32, "3des-cbc": 24}

_SIGNATURES: dict[str, tuple[Any, tuple[Any, ...]]] = {
    "EVP_CIPHER_CTX_new": (_c_void_p, ()),
    "EVP_CIPHER_CTX_free": (None, (_c_void_p,)),
    "EVP_CipherInit_ex": (
        _c_int,
        (_c_void_p, _c_void_p, _c_void_p, _c_char_p, _c_char_p, _c_int),
    ),
    "EVP_CIPHER_CTX_set_padding": (_c_int, (_c_void_p, _c_int)),
    "EVP_CipherUpdate": (_c_int, (_c_void_p, _c_void_p, _c_void_p, _c_char_p, _c_int)),
    "BN_CTX_new": (_c_void_p, ()),
    "BN_CTX_free": (None, (_c_void_p,)),
    "BN_bin2bn": (_c_void_p, (_c_char_p, _c_int, _c_void_p)),
    "BN_bn2binpad": (_c_int, (_c_void_p, _c_void_p, _c_int)),
    "BN_new": (_c_void_p, ()),
    "BN_clear_free": (None, (_c_void_p,)),
    "BN_MONT_CTX_new": (_c_void_p, ()),
    "BN_MONT_CTX_set": (_c_int, (_c_void_p, _c_void_p, _c_void_p)),
    "BN_mod_exp_mont_consttime": (
        _c_int,
        (_c_void_p, _c_void_p, _c_void_p, _c_void_p, _c_void_p, _c_void_p),
    ),
    **{getter: (_c_void_p, ()) for getter in _CIPHER_GETTERS.values()},
}


def open_library(
    sonames: tuple[str, ...], switch: str, find_name: str, declare: Callable[[Any], bool]
) -> Any:
    """The first of ``sonames`` that loads (else what ``find_library(find_name)`` names),
    once ``declare(lib)`` set its signatures and said True; None if none does, or with
    ``switch``=0 in the environment (A/B runs, the fallbacks' tests). Callers cache it."""
    if os.environ.get(switch, "1") == "0":
        return None
    for name in sonames:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        try:
            return lib if declare(lib) else None
        except AttributeError:  # a release without a function we need
            continue
    from ctypes.util import find_library  # last: it runs ldconfig in a subprocess

    found = find_library(find_name)
    if found is None or found in sonames:
        return None
    try:
        lib = ctypes.CDLL(found)
        return lib if declare(lib) else None
    except (OSError, AttributeError):
        return None


def _declare(lib: Any) -> bool:
    for function, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(lib, function)
        fn.restype, fn.argtypes = restype, argtypes
    return True


@functools.cache
def load() -> Any:
    """libcrypto with the signatures above declared, or None (see the module's docstring)."""
    return open_library(
        ("libcrypto.so.3", "libcrypto.so.1.1"), "LABCTL_LIBCRYPTO", "crypto", _declare
    )


class LibcryptoError(RuntimeError):
    """libcrypto refused a call (names the call, never a key)."""


class CbcContext:
    """One key's CBC in a never-finalized EVP context, padding off, so each block-aligned
    ``update`` is exactly CBC continuing from the previous call's last block (the interface
    of a cryptography CBC encryptor/decryptor that is never finalized). ``update_with_iv``
    restarts the chain at ``iv`` first, keeping the key schedule."""

    __slots__ = (
        "_capacity",
        "_ctx",
        "_lib",
        "_out",
        "_out_address",
        "_outl",
        "_outl_address",
        "_update",
    )

    def __init__(self, lib: Any, name: str, key: bytes, iv: bytes, *, encrypt: bool) -> None:
        self._lib = lib
        self._ctx = None  # set before anything can fail: __del__ checks it
        if len(key) != KEY_LENGTHS[name] or len(iv) != BLOCK_SIZES[name]:
            raise ValueError(f"{name}: key of {len(key)} bytes or IV of {len(iv)} bytes")
        cipher = getattr(lib, _CIPHER_GETTERS[name])()
        ctx = lib.EVP_CIPHER_CTX_new()
        if not ctx:
            raise LibcryptoError("EVP_CIPHER_CTX_new failed")
        self._ctx = ctx
        if not lib.EVP_CipherInit_ex(ctx, cipher, None, key, iv, 1 if encrypt else 0):
            raise LibcryptoError(f"EVP_CipherInit_ex refused {name}")
        lib.EVP_CIPHER_CTX_set_padding(ctx, 0)
        self._update = lib.EVP_CipherUpdate
        self._grow(_FIRST_BUFFER)
        self._outl = _c_int()
        self._outl_address = ctypes.addressof(self._outl)

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        """Whole blocks in, as many out (the caller checks the alignment)."""
        source = data if type(data) is bytes else bytes(data)
        size = len(source)
        if size > self._capacity:
            if size > MAX_UPDATE:
                raise ValueError(f"CBC update of {size} bytes exceeds {MAX_UPDATE}")
            self._grow(size)
        if not self._update(self._ctx, self._out_address, self._outl_address, source, size):
            raise LibcryptoError("EVP_CipherUpdate failed")
        return ctypes.string_at(self._out_address, self._outl.value)

    def _grow(self, size: int) -> None:
        self._out = ctypes.create_string_buffer(size)
        self._out_address = ctypes.addressof(self._out)
        self._capacity = size

    def update_with_iv(self, iv: bytes, data: bytes | bytearray | memoryview) -> bytes:
        """``update`` of a chain that starts at ``iv`` (same key)."""
        if not self._lib.EVP_CipherInit_ex(self._ctx, None, None, None, iv, -1):
            raise LibcryptoError("EVP_CipherInit_ex refused the IV")
        return self.update(data)

    def __del__(self) -> None:
        if self._ctx:
            self._lib.EVP_CIPHER_CTX_free(self._ctx)
            self._ctx = None


class FallbackCbcContext:
    """:class:`CbcContext`'s interface on cryptography's contexts, for where libcrypto is
    not loaded (cryptography is imported only then). ``update_with_iv`` makes a new
    context: slower, but the fallback is not the nodes' path."""

    __slots__ = ("_context", "_encrypt", "_make")

    def __init__(self, name: str, key: bytes, iv: bytes, *, encrypt: bool) -> None:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        if name == "3des-cbc":
            from .cryptocompat import TripleDES

            algorithm: Any = TripleDES(key)
        else:
            algorithm = algorithms.AES(key)
        self._make = lambda chain: Cipher(algorithm, modes.CBC(chain))
        self._encrypt = encrypt
        self._context = self._start(iv)

    def _start(self, iv: bytes) -> Any:
        cbc = self._make(iv)
        return cbc.encryptor() if self._encrypt else cbc.decryptor()

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        return self._context.update(data)

    def update_with_iv(self, iv: bytes, data: bytes | bytearray | memoryview) -> bytes:
        self._context = self._start(iv)
        return self._context.update(data)


def cbc_context(
    name: str, key: bytes, iv: bytes, *, encrypt: bool
) -> CbcContext | FallbackCbcContext:
    """A never-finalized CBC context: libcrypto's, or cryptography's where libcrypto is not
    loaded. Both have ``update`` and ``update_with_iv``."""
    lib = load()
    if lib is not None:
        return CbcContext(lib, name, key, iv, encrypt=encrypt)
    return FallbackCbcContext(name, key, iv, encrypt=encrypt)


class ModularExponent:
    """``base ** exponent % modulus`` for one fixed modulus (a MODP group), constant time in
    the exponent (BN_mod_exp_mont_consttime), the Montgomery form of the modulus made once.
    The BN_CTX is per call: the engine may run in several threads of one process."""

    __slots__ = ("_length", "_lib", "_modulus", "_mont")

    def __init__(self, lib: Any, modulus: int) -> None:
        self._lib = lib
        self._mont = self._modulus = None
        self._length = (modulus.bit_length() + 7) // 8
        raw = modulus.to_bytes(self._length, "big")
        self._modulus = lib.BN_bin2bn(raw, len(raw), None)
        self._mont = lib.BN_MONT_CTX_new()
        ctx = lib.BN_CTX_new()
        try:
            if not (self._modulus and self._mont and ctx):
                raise LibcryptoError("BN allocation failed")
            if not lib.BN_MONT_CTX_set(self._mont, self._modulus, ctx):
                raise LibcryptoError("BN_MONT_CTX_set failed")
        finally:
            lib.BN_CTX_free(ctx)

    def __call__(self, base: int, exponent: int) -> bytes:
        """The result, big-endian, left-padded to the modulus length."""
        lib = self._lib
        b = base.to_bytes(self._length, "big")
        e = exponent.to_bytes((exponent.bit_length() + 7) // 8 or 1, "big")
        ctx = lib.BN_CTX_new()
        bn_base = lib.BN_bin2bn(b, len(b), None)
        bn_exp = lib.BN_bin2bn(e, len(e), None)
        result = lib.BN_new()
        out = ctypes.create_string_buffer(self._length)
        try:
            if not (ctx and bn_base and bn_exp and result):
                raise LibcryptoError("BN allocation failed")
            if not lib.BN_mod_exp_mont_consttime(
                result, bn_base, bn_exp, self._modulus, ctx, self._mont
            ):
                raise LibcryptoError("BN_mod_exp_mont_consttime failed")
            if lib.BN_bn2binpad(result, out, self._length) != self._length:
                raise LibcryptoError("BN_bn2binpad failed")
            return out.raw
        finally:
            for bn in (bn_base, bn_exp, result):  # clear: the exponent is a private key
                lib.BN_clear_free(bn)
            lib.BN_CTX_free(ctx)

    # The modulus and its Montgomery form live as long as the process (one per group).


def modular_exponent(modulus: int) -> ModularExponent | None:
    """A libcrypto modular exponentiation for ``modulus``, or None where it is not loaded."""
    lib = load()
    if lib is None:
        return None
    return ModularExponent(lib, modulus)
