"""Phase-1 key derivation against vectors produced by an independent implementation.

Where the numbers come from: tests/integration/test_vpnc_interop.py ran the Debian vpnc
0.5.3 (``--debug 99``) against labctl's responder in network namespaces.  vpnc printed its
cookies, Ni, g^xi, g^xy, SKEYID, SKEYID_d/a/e, the expanded encryption key and the phase-1 IV;
Nr and g^xr were read by tshark from the capture of the same exchange.  The outputs below are
therefore vpnc's (libgcrypt's) results, not ours.  Both vectors need RFC 2409 appendix-B key
expansion (SHA1 -> 32-byte AES-256 key, MD5 -> 24-byte 3DES key).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labctl.ike import keys
from labctl.ike.constants import P1Hash
from labctl.ike.crypto import CipherSpec

VECTORS = Path(__file__).parent / "vectors"
CASES = [
    ("vpnc-aes256-sha1-modp1024.json", P1Hash.SHA1, 16),
    ("vpnc-3des-md5-modp1024.json", P1Hash.MD5, 8),
]


@pytest.mark.parametrize("name,hash_id,block", CASES)
def test_phase1_keys_equal_vpnc(name: str, hash_id: int, block: int) -> None:
    v = json.loads((VECTORS / name).read_text())
    b = {k: bytes.fromhex(val) for k, val in v.items() if k not in ("source", "psk")}
    skeyid = keys.skeyid_psk(hash_id, v["psk"].encode(), b["ni"], b["nr"])
    assert skeyid == b["skeyid"]
    cipher = CipherSpec("x", block, len(b["enc_key"]))
    k = keys.derive_phase1(hash_id, cipher, skeyid, b["gxy"], b["icookie"], b["rcookie"])
    assert k.skeyid_d == b["skeyid_d"]
    assert k.skeyid_a == b["skeyid_a"]
    assert k.skeyid_e == b["skeyid_e"]
    assert k.enc_key == b["enc_key"]
    assert len(k.enc_key) > len(k.skeyid_e)  # the expansion path was exercised
    assert keys.phase1_iv(hash_id, b["gxi"], b["gxr"], block) == b["iv0"]


def test_vectors_are_what_they_claim() -> None:
    for name, _, _ in CASES:
        v = json.loads((VECTORS / name).read_text())
        assert v["source"].startswith("vpnc 0.5.3")
        assert len(bytes.fromhex(v["gxy"])) == 128  # MODP group 2
