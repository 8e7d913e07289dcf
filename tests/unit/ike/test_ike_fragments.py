"""Cisco IKE fragmentation: the vendor ID and its capability flags, the fragment format,
reassembly with its limits (count, total size, time, duplicates, contradictions), hypothesis
fuzzing of the reassembly, and both engines through a path that drops big datagrams (a
PAT dropping IP fragments): phase 1 completes only with fragmentation."""

from __future__ import annotations

import os
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labctl.ike import ChildSaEstablished, Phase1Established, decode_header
from labctl.ike.config import VendorIdentity, seed_phase1, seed_phase2
from labctl.ike.constants import ExchangeType
from labctl.ike.errors import IkeConfigError, IkeDecodeError
from labctl.ike.events import IkeFragments
from labctl.ike.fragments import (
    CAP_AGGRESSIVE,
    CAP_MAIN_MODE,
    MAX_FRAGMENTS,
    Reassembler,
    decode_fragment,
    split,
)
from labctl.ike.vendor import classify_vendor_ids, fragmentation_vid
from tests.unit.ike.builders import add_client, connect, make_lab

EXAMPLES = int(os.environ.get("IKE_FUZZ_EXAMPLES", "250"))
PEER = ("171.69.89.78", 500)
ICOOKIE, RCOOKIE = bytes.fromhex("0102030405060708"), bytes.fromhex("1112131415161718")


def _message(size: int, exchange: int = ExchangeType.AGGRESSIVE) -> bytes:
    """An ISAKMP message of ``size`` bytes (header + one opaque body)."""
    body = bytes(random.Random(size).randrange(256) for _ in range(size - 28))
    header = ICOOKIE + RCOOKIE + bytes([1, 0x10, exchange, 0]) + bytes(4)
    return header + struct.pack("!I", size) + body


def _frags(message: bytes, size: int, fid: int = 7):
    return [decode_fragment(d, decode_header(d)) for d in split(message, size, fid)]


def test_the_vendor_id_is_md5_fragmentation_with_ciscos_capability_flags() -> None:
    vid = fragmentation_vid()
    assert vid.hex().upper() == "4048B7D56EBCE88525E7DE7F00D6C2D3C0000000"
    # racoon's isakmp_frag.h: identity protection (main mode) and aggressive mode share
    # bit 0x80000000; 0x40000000 is base mode. charon sends 80000000 (interop lab).
    assert CAP_MAIN_MODE == CAP_AGGRESSIVE == 0x80000000
    info = classify_vendor_ids([vid])
    assert info.fragmentation and info.fragmentation_flags == 0xC0000000
    charon = classify_vendor_ids([bytes.fromhex("4048b7d56ebce88525e7de7f00d6c2d380000000")])
    assert charon.fragmentation_flags == CAP_MAIN_MODE


def test_a_fragment_on_the_wire() -> None:
    message = _message(1000)
    datagrams = split(message, 400, 0x1234)
    assert [len(d) for d in datagrams] == [400, 400, 28 + 8 + 1000 - 2 * 364]
    first = datagrams[0]
    header = decode_header(first)
    assert (header.icookie, header.rcookie) == (ICOOKIE, RCOOKIE)
    assert header.next_payload == 132 and header.exchange == ExchangeType.AGGRESSIVE
    assert (header.flags, header.message_id, header.length) == (0, 0, 400)
    # payload header: next 0, reserved 0, length 8 + data, fragment ID, number, flags
    assert first[28:36] == bytes.fromhex("0000017412340100")
    assert datagrams[-1][28 + 6 : 28 + 8] == bytes([3, 1])  # number 3, last
    assert first[36:] == message[:364]
    assert split(message, 1000, 1) == [message]  # fits: sent whole


def test_fragments_reassemble_in_any_order_and_duplicates_change_nothing() -> None:
    message = _message(2500)
    frags = _frags(message, 300)
    r = Reassembler()
    shuffled = frags[::-1] + frags[:2]
    results = [r.add(f, PEER, 0.0) for f in shuffled[:-2]]
    assert results[:-1] == [None] * (len(frags) - 1) and results[-1] == message
    assert r.completed_count == len(frags) and len(r) == 0
    assert all(r.add(f, PEER, 1.0) is None for f in shuffled[-2:])  # late copies: a new wait


def test_reassembly_limits() -> None:
    r = Reassembler(max_message=2000)
    frags = _frags(_message(2500), 300)
    with pytest.raises(IkeDecodeError, match="over 2000 bytes"):
        for f in frags:
            r.add(f, PEER, 0.0)
    assert len(r) == 0  # the whole message is forgotten
    with pytest.raises(ValueError, match="fragments"):
        split(_message(60000), 300, 1)  # more than MAX_FRAGMENTS
    big = _frags(_message(300 * (MAX_FRAGMENTS + 2)), 400)
    with pytest.raises(IkeDecodeError, match="over the limit"):
        Reassembler(max_fragments=4).add(big[4], PEER, 0.0)
    with pytest.raises(IkeConfigError, match="fragment_size"):
        make_lab(fragment_size=50)


def test_contradicting_fragments_drop_the_message() -> None:
    frags = _frags(_message(1000), 300)
    r = Reassembler()
    r.add(frags[0], PEER, 0.0)
    changed = type(frags[0])(frags[0].header, 7, 1, False, b"x" * len(frags[0].data))
    with pytest.raises(IkeDecodeError, match="arrived twice, changed"):
        r.add(changed, PEER, 0.0)
    r.add(frags[-1], PEER, 0.0)  # last = 4
    too_far = type(frags[0])(frags[0].header, 7, 5, False, b"y")
    with pytest.raises(IkeDecodeError, match="after the last"):
        r.add(too_far, PEER, 0.0)


def test_incomplete_messages_time_out_and_the_number_pending_is_bounded() -> None:
    r = Reassembler(timeout=30.0, max_pending=3)
    frags = _frags(_message(1000), 300)
    r.add(frags[0], PEER, 0.0)
    assert r.expire(29.0) == [] and len(r) == 1
    ((key, held),) = r.expire(30.0)
    assert key[0] == PEER and held == 1 and len(r) == 0
    for port in range(10):
        r.add(frags[0], ("10.0.0.1", port), 0.0)
    assert len(r) == 3


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        (lambda d: d[:34], "too short"),
        (lambda d: d[:28] + b"\x05" + d[29:], "followed by payload 5"),
        (lambda d: d[:30] + b"\x00\x09" + d[32:], "length 9 differs"),
        (lambda d: d[:34] + b"\x00" + d[35:], "number 0"),
        (lambda d: d[:18] + bytes([ExchangeType.QUICK]) + d[19:], "only phase-1"),
    ],
)
def test_malformed_fragments_are_named(mutation, message) -> None:
    data = mutation(split(_message(1000), 300, 1)[0])
    with pytest.raises(IkeDecodeError, match=message):
        decode_fragment(data, decode_header(data[:24] + struct.pack("!I", len(data)) + data[28:]))


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    size=st.integers(min_value=29, max_value=6000),
    chunk=st.integers(min_value=100, max_value=1500),
    order=st.randoms(use_true_random=False),
    dups=st.integers(min_value=0, max_value=5),
)
def test_fuzz_any_order_with_duplicates_reassembles_exactly(size, chunk, order, dups) -> None:
    message = _message(size)
    if size <= chunk:
        assert split(message, chunk, 1) == [message]
        return
    try:
        frags = _frags(message, chunk)
    except ValueError:
        assert size > (chunk - 36) * MAX_FRAGMENTS  # refused when sending: too many
        return
    sequence = frags + [order.choice(frags) for _ in range(dups)]
    order.shuffle(sequence)
    r = Reassembler()
    done = [out for f in sequence if (out := r.add(f, PEER, 0.0)) is not None]
    assert done[0] == message  # whole as soon as the last missing one came
    assert all(out == message for out in done)  # copies after it may complete it again


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    blobs=st.lists(
        st.tuples(
            st.integers(0, 3),  # fragment ID
            st.integers(0, 40),  # number
            st.integers(0, 255),  # flags
            st.binary(max_size=3000),
        ),
        max_size=60,
    )
)
def test_fuzz_hostile_fragments_only_ever_raise_decode_errors_and_stay_bounded(blobs) -> None:
    r = Reassembler(max_pending=8)
    for fid, number, flags, data in blobs:
        body = struct.pack("!BBHHBB", 0, 0, 8 + len(data), fid, number, flags) + data
        datagram = ICOOKIE + RCOOKIE + bytes([132, 0x10, 4, 0]) + bytes(4)
        datagram += struct.pack("!I", 28 + len(body)) + body
        try:
            frag = decode_fragment(datagram, decode_header(datagram))
            out = r.add(frag, PEER, 0.0)
        except IkeDecodeError:
            continue
        if out is not None:
            assert len(out) <= r.max_message
        assert len(r) <= 8
        assert all(p.size <= r.max_message for p in r._pending.values())


# -- both engines --------------------------------------------------------------------------


def _fragmenting_lab(*, client_fragments: bool, exchange: str = "aggressive"):
    """A path that drops every datagram over 180 bytes but the first message (a PAT
    dropping the IP fragments of big IKE messages: certificates make them that big)."""
    lab = make_lab(
        phase1=seed_phase1(), phase2=seed_phase2(), fragment_size=180, main_mode_group="ciscovpn"
    )
    add_client(
        lab,
        phase1=seed_phase1(),
        phase2=seed_phase2(),
        exchange=exchange,
        vendor=VendorIdentity(fragmentation=client_fragments, vpn3000_version=None),
        fragment_size=180,
    )
    lab.dropped_big = []  # type: ignore[attr-defined]

    def drop(f) -> bool:
        if len(f.data) > 180 and decode_header(f.data).rcookie != bytes(8):
            lab.dropped_big.append(f)  # type: ignore[attr-defined]
            return True
        return False

    lab.drop = drop
    return lab


@pytest.mark.parametrize("exchange", ["aggressive", "main"])
def test_fragments_carry_phase_1_through_a_path_that_drops_big_datagrams(exchange) -> None:
    lab = _fragmenting_lab(client_fragments=True, exchange=exchange)
    connect(lab)
    assert not lab.dropped_big
    assert lab.events_of("c1", Phase1Established) and lab.events_of("c1", ChildSaEstablished)
    for sender, receiver in (("server", "c1"), ("c1", "server")):
        sent = [(e.size, e.fragments) for e in lab.events_of(sender, IkeFragments) if e.sent]
        got = [(e.size, e.fragments) for e in lab.events_of(receiver, IkeFragments) if not e.sent]
        assert sent == got and all(n >= 2 for _, n in sent)
    assert any(e.sent for e in lab.events_of("server", IkeFragments))  # its message 2 at least
    assert any(decode_header(f.data).next_payload == 132 for f in lab.capture)


def test_without_fragmentation_phase_1_never_completes_on_that_path() -> None:
    lab = _fragmenting_lab(client_fragments=False)
    connect(lab, duration=60)
    assert lab.dropped_big  # the gateway's big message 2, again and again
    assert not lab.events_of("c1", Phase1Established)
    assert not any(decode_header(f.data).next_payload == 132 for f in lab.capture)


def test_a_lost_fragment_is_recovered_by_the_retransmission() -> None:
    lab = _fragmenting_lab(client_fragments=True)
    lost: list = []
    path = lab.drop

    def lose_one(f) -> bool:
        if not lost and decode_header(f.data).next_payload == 132:
            lost.append(f)
            return True
        return path(f)

    lab.drop = lose_one
    connect(lab, duration=10)
    assert lost and lab.events_of("c1", ChildSaEstablished)


@pytest.mark.parametrize(
    ("flags", "main", "aggressive"),
    [
        (0x80000000, True, True),  # charon 5.9: main mode fragments too (the old reading: no)
        (0xC0000000, True, True),  # Cisco
        (0x40000000, False, False),  # base mode only
        (0, True, True),  # no flags (Windows peers): taken as 80000000
    ],
)
def test_which_exchanges_a_peers_capability_flags_allow(flags, main, aggressive) -> None:
    from types import SimpleNamespace

    from labctl.ike.exchanges.fragmentation import peer_takes

    vid = fragmentation_vid(flags or None)
    sa = SimpleNamespace(peer_vendor=classify_vendor_ids([vid]))
    assert peer_takes(sa, ExchangeType.MAIN) is main
    assert peer_takes(sa, ExchangeType.AGGRESSIVE) is aggressive
