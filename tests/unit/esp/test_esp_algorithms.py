"""Algorithm tables, IKEv1 number mapping, MTU arithmetic, the replay window alone."""

from __future__ import annotations

import pytest

from labctl.esp import (
    EspReplay,
    EspSa,
    ReplayWindow,
    cipher_for_ikev1,
    integrity_for_ikev1,
    max_inner_packet,
)
from tests.unit.esp.esp_helpers import sa_pair


def test_ikev1_numbers() -> None:
    assert cipher_for_ikev1(3).name == "3des-cbc"
    assert cipher_for_ikev1(12).name == "aes128-cbc"
    assert cipher_for_ikev1(12, 256).name == "aes256-cbc"
    assert cipher_for_ikev1(11).name == "null"
    assert integrity_for_ikev1(1).name == "hmac-md5-96"
    assert integrity_for_ikev1(2).name == "hmac-sha1-96"
    assert integrity_for_ikev1(5).name == "hmac-sha2-256-128"
    with pytest.raises(ValueError, match="transform ID 2"):
        cipher_for_ikev1(2)  # single DES: not supported
    with pytest.raises(ValueError, match="key length 64"):
        cipher_for_ikev1(12, 64)
    with pytest.raises(ValueError, match="algorithm 7"):
        integrity_for_ikev1(7)


@pytest.mark.parametrize(
    ("cipher", "integrity", "udp"),
    [
        ("3des-cbc", "hmac-md5-96", True),
        ("aes128-cbc", "hmac-sha1-96", True),
        ("aes256-cbc", "hmac-sha2-256-128", False),
        ("null", "hmac-sha1-96", True),
    ],
)
def test_max_inner_packet_fills_the_link_exactly(cipher: str, integrity: str, udp: bool) -> None:
    link = 1500
    inner = max_inner_packet(link, cipher, integrity, udp)
    out, _ = sa_pair(cipher, integrity)
    outer = 20 + (8 if udp else 0)
    assert outer + len(out.seal(bytes(inner))) <= link
    # one byte more forces another alignment unit and overflows the link
    assert outer + len(out.seal(bytes(inner + 1))) > link


def test_max_inner_packet_rejects_tiny_links() -> None:
    with pytest.raises(ValueError, match="no room"):
        max_inner_packet(60, "aes128-cbc", "hmac-sha1-96")


def test_replay_window_alone() -> None:
    w = ReplayWindow(32)
    for seq in (5, 3, 4, 1):
        w.check(seq)
        w.update(seq)
    for seq in (0, 1, 3, 4, 5):
        with pytest.raises(EspReplay):
            w.check(seq)
    w.check(2)  # a hole inside the window is still acceptable
    w.update(40)
    with pytest.raises(EspReplay, match="left of the window"):
        w.check(8)
    w.check(9)
    w.update(10_000)
    assert (w.top, w.bitmap) == (10_000, 1)
    with pytest.raises(ValueError, match="minimum of 32"):
        ReplayWindow(16)


def test_inbound_sa_replay_window_size_is_configurable() -> None:
    out, _ = sa_pair("aes128-cbc", "hmac-sha1-96")
    _, inb = sa_pair("aes128-cbc", "hmac-sha1-96", replay_window=128)
    packets = [bytes(out.seal(b"p")) for _ in range(130)]
    inb.open(packets[129])
    inb.open(packets[2])  # seq 3 is 127 behind 130: inside a 128 window
    with pytest.raises(EspReplay):
        inb.open(packets[1])
    assert isinstance(inb, EspSa)


def test_random_pool_never_repeats_and_refills() -> None:
    from labctl.esp.sa import RandomPool

    pool = RandomPool(size=64)
    blocks = [pool(16) for _ in range(40)]  # crosses several refills
    assert all(len(b) == 16 for b in blocks)
    assert len(set(blocks)) == 40
    assert len(pool(100)) == 100  # larger than the pool: still served
