"""labctl.libcrypto (OpenSSL's EVP and BN through ctypes) against cryptography and pow():
chained CBC updates as a never-finalized context makes them, IV restarts, every input type
the data path hands it, its refusals, and the constant-time modular exponentiation."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from labctl import libcrypto
from labctl.agent.dataclass_cache import AGENT_MODULES
from labctl.cryptocompat import TripleDES
from labctl.ike.crypto import MODP_PRIMES
from tests.unit.fresh_interpreter import modules_after_import, modules_after_running

NAMES = ["aes128-cbc", "aes192-cbc", "aes256-cbc", "3des-cbc"]


def _reference(name: str, key: bytes, iv: bytes, *, encrypt: bool):
    algorithm = TripleDES(key) if name == "3des-cbc" else algorithms.AES(key)
    cbc = Cipher(algorithm, modes.CBC(iv))
    return cbc.encryptor() if encrypt else cbc.decryptor()


@pytest.fixture(scope="module")
def lib():
    loaded = libcrypto.load()
    assert loaded is not None, "libcrypto.so.3 must load on the host as on the nodes"
    return loaded


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("encrypt", [True, False])
def test_chained_updates_match_a_never_finalized_cryptography_context(lib, name, encrypt):
    rng = random.Random(name)
    bs = libcrypto.BLOCK_SIZES[name]
    key = rng.randbytes(libcrypto.KEY_LENGTHS[name])
    iv = rng.randbytes(bs)
    ours = libcrypto.CbcContext(lib, name, key, iv, encrypt=encrypt)
    ref = _reference(name, key, iv, encrypt=encrypt)
    for blocks in (1, 2, 88, 3, 4096 // bs, 1):
        data = rng.randbytes(blocks * bs)
        # the data path hands bytes, bytearray and memoryview slices
        for kind in (bytes, bytearray, lambda b: memoryview(b"xx" + b)[2:]):
            assert ours.update(kind(data)) == ref.update(data)


@pytest.mark.parametrize("name", NAMES)
def test_update_with_iv_restarts_the_chain_and_keeps_the_key(lib, name):
    rng = random.Random(7)
    bs = libcrypto.BLOCK_SIZES[name]
    key = rng.randbytes(libcrypto.KEY_LENGTHS[name])
    enc = libcrypto.CbcContext(lib, name, key, bytes(bs), encrypt=True)
    dec = libcrypto.CbcContext(lib, name, key, bytes(bs), encrypt=False)
    for n in range(1, 6):
        iv, pt = rng.randbytes(bs), rng.randbytes(n * bs)
        ct = enc.update_with_iv(iv, pt)
        assert ct == _reference(name, key, iv, encrypt=True).update(pt)
        assert dec.update_with_iv(iv, ct) == pt


def test_the_largest_packet_fits_and_a_larger_one_is_refused(lib):
    """The output buffer starts small (thousands of contexts in a fleet) and grows."""
    ctx = libcrypto.CbcContext(lib, "aes128-cbc", bytes(16), bytes(16), encrypt=True)
    ref = _reference("aes128-cbc", bytes(16), bytes(16), encrypt=True)
    assert ctx._capacity <= 2048
    for size in (1408, 4096, libcrypto.MAX_UPDATE, 32):
        data = os.urandom(size)
        assert ctx.update(data) == ref.update(data)
    assert ctx._capacity == libcrypto.MAX_UPDATE
    with pytest.raises(ValueError, match="exceeds"):
        ctx.update(bytes(libcrypto.MAX_UPDATE + 16))


@pytest.mark.parametrize(("key_len", "iv_len"), [(15, 16), (16, 8), (0, 16)])
def test_wrong_key_or_iv_lengths_are_refused_without_naming_the_key(lib, key_len, iv_len):
    key = b"\xab" * key_len
    with pytest.raises(ValueError) as err:
        libcrypto.CbcContext(lib, "aes128-cbc", key, bytes(iv_len), encrypt=True)
    assert "abab" not in str(err.value)


def test_lanes_in_threads_each_get_their_own_chain(lib):
    """Two contexts of one key in two threads at once (ESP lanes): ctypes drops the GIL
    in the call, and each context's output buffer is its own."""
    key, iv = os.urandom(24), bytes(8)
    data = [os.urandom(1408) for _ in range(200)]
    results: dict[int, list[bytes]] = {}

    def lane(n: int) -> None:
        ctx = libcrypto.CbcContext(lib, "3des-cbc", key, iv, encrypt=True)
        results[n] = [ctx.update(d) for d in data]

    threads = [threading.Thread(target=lane, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ref = _reference("3des-cbc", key, iv, encrypt=True)
    expected = [ref.update(d) for d in data]
    assert results[0] == results[1] == expected


@pytest.mark.parametrize("group", [1, 2, 5, 14])
def test_modular_exponent_is_pow(lib, group):
    p = MODP_PRIMES[group]
    modexp = libcrypto.ModularExponent(lib, p)
    rng = random.Random(group)
    plen = (p.bit_length() + 7) // 8
    for base in (2, 3, p - 2, rng.randrange(2, p - 1)):
        for exponent in (1, 2, rng.getrandbits(256), rng.getrandbits(1024)):
            assert modexp(base, exponent) == pow(base, exponent, p).to_bytes(plen, "big")


def test_without_libcrypto_the_callers_fall_back_and_agree():
    """LABCTL_LIBCRYPTO=0 (and a host without libcrypto): CBC from cryptography, DH by
    pow(), same bytes; checked in a fresh interpreter, as the variable is read at load."""
    code = (
        "from labctl import libcrypto; from labctl.ike import crypto;"
        "assert libcrypto.load() is None and crypto._DH_BACKEND == 'pow';"
        "ctx = libcrypto.cbc_context('aes128-cbc', bytes(16), bytes(16), encrypt=True);"
        "assert type(ctx).__name__ == 'FallbackCbcContext';"
        "print(ctx.update(bytes(32)).hex())"
    )
    env = dict(os.environ, LABCTL_LIBCRYPTO="0")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    ref = _reference("aes128-cbc", bytes(16), bytes(16), encrypt=True).update(bytes(32))
    assert out == ref.hex()


def test_the_node_agent_never_imports_cryptography_for_pre_shared_keys():
    """The point of this module: a client, concentrator, site or fleet agent process loads
    no cryptography (its OpenSSL backend cost ~80 ms of CPU per agent)."""
    loaded = modules_after_import(*AGENT_MODULES)
    assert "labctl.agent.fleet" in loaded
    assert not {m for m in loaded if m.split(".")[0] == "cryptography"}


def test_a_pre_shared_key_exchange_never_imports_cryptography():
    """Nor does running one: the aggressive-mode reply's CR handling imported the
    certificate module for every client (cryptography: ~25 ms of each agent's CPU)."""
    loaded = modules_after_running(
        "from labctl.ike import ChildSaEstablished\n"
        "from tests.unit.ike.builders import add_client, connect, make_lab\n"
        "lab = make_lab()\n"
        "add_client(lab)\n"
        "connect(lab)\n"
        "assert lab.events_of('c1', ChildSaEstablished)\n"
    )
    assert "labctl.ike.initiator" in loaded
    assert not {m for m in loaded if m.split(".")[0] == "cryptography"}


def test_open_library_takes_the_first_soname_that_loads_and_declares(monkeypatch):
    declared = []

    def declare(lib) -> bool:
        declared.append(lib._name)
        return True

    lib = libcrypto.open_library(("libnot-there.so.9", "libcrypto.so.3"), "LABCTL_T", "x", declare)
    assert lib is not None and declared == ["libcrypto.so.3"]
    assert libcrypto.open_library(("libcrypto.so.3",), "LABCTL_T", "x", lambda lib: False) is None
    monkeypatch.setenv("LABCTL_T", "0")
    assert libcrypto.open_library(("libcrypto.so.3",), "LABCTL_T", "x", declare) is None
    monkeypatch.delenv("LABCTL_T")
    # a library without a function the caller declares: unusable, not an error
    assert (
        libcrypto.open_library(("libcrypto.so.3",), "LABCTL_T", "x", lambda lib: lib.nope) is None
    )
