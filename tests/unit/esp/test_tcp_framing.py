"""Cisco cTCP records (IPsec over TCP): builders and the trailer-finding deframer."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labctl.esp import ESP_TRAILER, Kind, StreamDeframer, frame_esp, frame_ike
from labctl.esp.tcp_framing import DEFAULT_MAX_RECORD, MAGIC, ike_trailer

IKE = bytes(range(1, 29)) + b"payload"  # 28 bytes standing in for an ISAKMP header + body
ESP = b"\x12\x34\x56\x78" + struct.pack("!I", 1) + bytes(range(200))


def test_records_have_the_layout_wireshark_and_quicksec_describe() -> None:
    # trailer: 4 zero bytes, seq, flags, 21 45 6C 69 10, protocol, 01 00
    assert bytes.fromhex("00000000 0000 0000 21456c6910 32 0100") == ESP_TRAILER
    assert frame_esp(ESP) == ESP + ESP_TRAILER
    record = frame_ike(IKE, seq=7, from_client=True)
    udp, body, trailer = record[:8], record[8:-16], record[-16:]
    assert struct.unpack("!HHHH", udp) == (500, 500, 8 + len(IKE), 0)  # checksum 0
    assert body == IKE
    assert trailer == bytes.fromhex("00000000 0007 4000 21456c6910 11 0100")
    assert frame_ike(IKE)[-16:] == ike_trailer(0, False)  # server to client: flags 0
    assert bytes.fromhex("21456c6910") == MAGIC


@pytest.mark.parametrize(
    ("build", "payload", "match"),
    [
        (frame_esp, bytes(4) + bytes(20), "SPI 0"),
        (frame_esp, b"\x01\x02\x03", "too short"),
        (frame_ike, b"\x01" * 65530, "does not fit"),
    ],
)
def test_builders_refuse_what_cannot_be_read_back(build, payload: bytes, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build(payload)


def stream_of(records: list[tuple[Kind, bytes]]) -> bytes:
    return b"".join(frame_ike(p) if k is Kind.IKE else frame_esp(p) for k, p in records)


def test_whole_stream_in_one_chunk() -> None:
    records = [(Kind.IKE, IKE), (Kind.ESP, ESP), (Kind.ESP, ESP[:8]), (Kind.IKE, IKE * 3)]
    d = StreamDeframer()
    assert d.feed(stream_of(records)) == records
    assert d.errors == {} and d.fatal is None and d.buffered == 0 and d.records == 4


def test_every_split_point_and_byte_by_byte() -> None:
    records = [(Kind.IKE, IKE), (Kind.ESP, ESP), (Kind.ESP, ESP)]
    wire = stream_of(records)
    for cut in range(len(wire) + 1):
        d = StreamDeframer()
        assert d.feed(wire[:cut]) + d.feed(wire[cut:]) == records, cut
    d = StreamDeframer()
    got = [r for i in range(len(wire)) for r in d.feed(wire[i : i + 1])]
    assert got == records and d.buffered == 0


def test_magic_inside_a_payload_is_not_a_trailer() -> None:
    # the 5 magic bytes inside an ESP packet, without the rest of a trailer around them
    tricky = ESP[:20] + MAGIC + b"\x32\x01\x00" + ESP[20:]
    assert tricky.count(MAGIC) == 1
    d = StreamDeframer()
    assert d.feed(frame_esp(tricky) + frame_esp(ESP)) == [(Kind.ESP, tricky), (Kind.ESP, ESP)]
    assert d.errors == {}


def test_bad_records_are_counted_and_the_stream_stays_in_step() -> None:
    bad_udp = struct.pack("!HHHH", 500, 500, 99, 0) + IKE  # wrong UDP length
    other_ports = struct.pack("!HHHH", 4500, 500, 8 + len(IKE), 0) + IKE
    ah = b"\x00" * 24 + ike_trailer(0, False)[:13] + b"\x33\x01\x00"
    wire = (
        bad_udp + ike_trailer(1, True)
        + other_ports + ike_trailer(2, True)
        + struct.pack("!HHHH", 500, 500, 16, 0) + b"x" * 8 + ike_trailer(3, True)  # short
        + bytes(12) + ESP_TRAILER  # SPI 0
        + ah
        + frame_esp(ESP)
    )  # fmt: skip
    d = StreamDeframer()
    assert d.feed(wire) == [(Kind.ESP, ESP)]
    assert d.errors == {
        "bad_udp_length": 1,
        "not_ike_ports": 1,
        "short_ike": 1,
        "esp_spi_zero": 1,
        "ah_unsupported": 1,
    }
    assert d.fatal is None


def test_a_stream_without_trailers_is_fatal_and_bounded() -> None:
    d = StreamDeframer(max_record=1024)
    assert d.feed(b"GET / HTTP/1.0\r\n\r\n") == [] and d.fatal is None
    got = d.feed(b"x" * 1100)
    assert got == [] and d.errors == {"oversize": 1} and d.buffered == 0
    assert d.fatal is not None and "no cTCP trailer within 1040 bytes" in d.fatal
    assert d.feed(frame_esp(ESP)) == [] and d.errors["after_fatal"] == 1


def test_an_oversize_record_is_fatal_even_if_its_trailer_comes_later() -> None:
    d = StreamDeframer(max_record=1024)
    wire = frame_esp(b"\x01" * 2000)
    assert d.feed(wire[:1500]) == [] and d.fatal is not None


def test_buffer_is_bounded_by_the_largest_record() -> None:
    d = StreamDeframer()
    big = b"\x01" * DEFAULT_MAX_RECORD
    d.feed(frame_esp(big)[:-1])
    assert d.buffered == DEFAULT_MAX_RECORD + 15 and d.fatal is None
    assert d.feed(b"\x00") == [(Kind.ESP, big)] and d.buffered == 0


def test_max_record_is_validated() -> None:
    for bad in (7, 65536):
        with pytest.raises(ValueError, match="max_record"):
            StreamDeframer(max_record=bad)


record_st = st.one_of(
    st.tuples(st.just(Kind.IKE), st.binary(min_size=28, max_size=600)),
    st.tuples(
        st.just(Kind.ESP),
        st.binary(min_size=8, max_size=600).filter(lambda b: b[:4] != bytes(4)),
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(record_st, max_size=20), st.randoms(use_true_random=False))
def test_any_records_survive_any_segmentation(records, rnd: random.Random) -> None:
    wire = stream_of(records)
    d = StreamDeframer()
    got, pos = [], 0
    while pos < len(wire):
        step = rnd.randint(1, 200)
        got += d.feed(wire[pos : pos + step])
        pos += step
    assert got == records and d.errors == {} and d.buffered == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=30))
def test_garbage_never_raises_and_stays_bounded(chunks: list[bytes]) -> None:
    d = StreamDeframer(max_record=2048)
    for chunk in chunks:
        for kind, payload in d.feed(chunk):
            assert kind in (Kind.IKE, Kind.ESP)
            assert len(payload) <= 2048
            if kind is Kind.ESP:
                assert len(payload) >= 8 and payload[:4] != bytes(4)
        assert d.buffered <= 2048 + 16 + 300
    assert d.bytes_in == sum(map(len, chunks))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=10), record_st)
def test_after_garbage_the_stream_is_in_step_again(chunks, record) -> None:
    """Garbage (seeded with real trailers) glues onto the record after it, which is then
    dropped or delivered damaged; the record after that one arrives intact."""
    noise = b"".join(c + (ESP_TRAILER if i % 2 else b"") for i, c in enumerate(chunks))
    d = StreamDeframer()
    got = d.feed(noise + stream_of([(Kind.ESP, ESP), record]))
    assert d.fatal is None and got and got[-1] == record
