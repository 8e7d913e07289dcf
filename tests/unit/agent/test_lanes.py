"""The 3DES cipher of a burst on two threads: same packets, in order, same drops."""

from __future__ import annotations

import os
import struct
import time

import pytest

from labctl.agent import lanes
from labctl.agent.lanes import MIN_PARALLEL, TwoLanes
from labctl.esp import EspSa
from labctl.esp.errors import EspAuthFailed, EspBadPadding, EspReplay
from labctl.esp.sa import CIPHER_LANES


def _pair(cipher: str) -> tuple[EspSa, EspSa]:
    key = os.urandom(24 if cipher == "3des-cbc" else 16)
    auth = os.urandom(16)
    out = EspSa.outbound(0x2000, cipher, "hmac-md5-96", key, auth)
    inb = EspSa.inbound(0x2000, cipher, "hmac-md5-96", key, auth)
    return out, inb


@pytest.mark.skipif(CIPHER_LANES.get("3des-cbc", 1) < 2, reason="LABCTL_ESP_LANES=1")
def _slow_lane_zero(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """The calling thread pauses before each packet, so the worker surely takes some."""
    real = getattr(lanes, name)

    def slow(item: tuple, lane: int) -> object:
        if lane == 0:
            time.sleep(0.002)
        return real(item, lane)

    monkeypatch.setattr(lanes, name, slow)


def test_a_3des_burst_is_sealed_on_two_threads_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    out, inb = _pair("3des-cbc")
    assert out.lanes == 2
    _slow_lane_zero(monkeypatch, "_encrypt_one")
    sealer = TwoLanes()
    payloads = [os.urandom(1400 - i) for i in range(40)]
    prepared = [(out, *out.prepare(p)) for p in payloads]
    packets = sealer.seal(prepared)
    assert sealer.bursts == 1
    assert 0 < sealer.helped < 40  # both threads sealed some
    assert [struct.unpack_from("!II", p) for p in packets] == [(0x2000, s) for s in range(1, 41)]
    assert [inb.open(p) for p in packets] == [(4, p) for p in payloads]
    assert inb.drops == {}
    # a second burst after the first: the worker is still there, the lanes' chains moved on
    more = [os.urandom(1000) for _ in range(8)]
    packets = sealer.seal([(out, *out.prepare(p)) for p in more])
    assert sealer.bursts == 2
    assert [inb.open(p) for p in packets] == [(4, p) for p in more]
    assert out.packets == inb.packets == 48
    sealer.close()


def test_small_bursts_and_one_lane_ciphers_stay_on_the_callers_thread() -> None:
    sealer = TwoLanes()
    aes, aes_in = _pair("aes128-cbc")
    assert aes.lanes == 1
    packets = sealer.seal([(aes, *aes.prepare(b"x" * 1400)) for _ in range(10)])
    assert [aes_in.open(p)[1] for p in packets] == [b"x" * 1400] * 10
    des, des_in = _pair("3des-cbc")
    few = sealer.seal([(des, *des.prepare(b"y" * 1400)) for _ in range(MIN_PARALLEL - 1)])
    assert [des_in.open(p)[1] for p in few] == [b"y" * 1400] * (MIN_PARALLEL - 1)
    acks = sealer.seal([(des, *des.prepare(b"a" * 52)) for _ in range(30)])  # TCP ACKs
    assert [des_in.open(p)[1] for p in acks] == [b"a" * 52] * 30
    authenticated = []
    for esp in (des.seal(b"b" * 52) for _ in range(30)):
        authenticated.append((des_in, esp, des_in.authenticate(esp)[1]))
    assert [des_in.finish_open(p, 0)[1] for p in sealer.decrypt(authenticated)] == [b"b" * 52] * 30
    assert sealer.bursts == 0
    assert sealer._thread is None  # no second thread was even started


def test_a_failure_on_the_worker_reaches_the_caller_and_the_next_burst_works(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out, inb = _pair("3des-cbc")
    if out.lanes < 2:
        pytest.skip("LABCTL_ESP_LANES=1")
    sealer = TwoLanes()
    real = lanes._encrypt_one

    def failing(item: tuple, lane: int) -> bytearray:
        if lane == 1:
            raise RuntimeError("lane 1 broke")
        time.sleep(0.002)  # so the worker takes a packet
        return real(item, lane)

    monkeypatch.setattr(lanes, "_encrypt_one", failing)
    with pytest.raises(RuntimeError, match="lane 1 broke"):
        sealer.seal([(out, *out.prepare(b"z" * 1200)) for _ in range(6)])
    monkeypatch.setattr(lanes, "_encrypt_one", real)
    packets = sealer.seal([(out, *out.prepare(b"w" * 1200)) for _ in range(6)])
    assert [inb.open(p)[1] for p in packets] == [b"w" * 1200] * 6  # seq 7..12: no replay drop
    sealer.close()


def test_prepare_then_encrypt_is_seal() -> None:
    out, inb = _pair("3des-cbc")
    seq, plain = out.prepare(b"q" * 77)
    esp = out.encrypt_prepared(seq, plain, lane=out.lanes - 1)
    assert len(esp) == out.sealed_size(plain)
    assert inb.open(esp) == (4, b"q" * 77)
    assert (out.seq, out.packets, out.bytes) == (1, 1, 77)


@pytest.mark.skipif(CIPHER_LANES.get("3des-cbc", 1) < 2, reason="LABCTL_ESP_LANES=1")
def test_a_3des_burst_is_opened_on_two_threads_with_every_check_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out, inb = _pair("3des-cbc")
    assert inb.lanes == 2
    payloads = [os.urandom(1400 - 3 * i) for i in range(12)]
    packets = [out.seal(p) for p in payloads]
    packets[3][-1] ^= 1  # a bad ICV
    packets[5] = packets[4]  # a replay
    _slow_lane_zero(monkeypatch, "_decrypt_one")
    two = TwoLanes()
    good = []
    for esp in packets:
        try:
            good.append((inb, esp, inb.authenticate(esp)[1]))
        except (EspAuthFailed, EspReplay):
            continue
    assert len(good) == 10
    plains = two.decrypt(good)
    assert two.bursts == 1
    assert 0 < two.helped < 10
    opened = [inb.finish_open(p, 0) for p in plains]
    keep = [p for i, p in enumerate(payloads) if i not in (3, 5)]
    assert opened == [(4, p) for p in keep]
    assert inb.drops == {"auth": 1, "replay": 1}
    assert inb.packets == 10
    two.close()


def test_finish_open_counts_bad_padding() -> None:
    out, inb = _pair("3des-cbc")
    esp = out.seal(b"p" * 64)
    _seq, body_end = inb.authenticate(esp)
    plain = bytearray(inb.decrypt_authenticated(esp, body_end, inb.lanes - 1))
    plain[-2] = 200  # pad length beyond the payload
    with pytest.raises(EspBadPadding):
        inb.finish_open(bytes(plain), 1)
    assert inb.drops == {"padding": 1}
