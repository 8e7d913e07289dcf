"""RFC 8229 stream framing for IPsec over TCP: builders and the stateful deframer."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labctl.esp import Kind, StreamDeframer, frame_esp, frame_ike
from labctl.esp.tcp_framing import DEFAULT_MAX_RECORD, STREAM_PREFIX, esp_record_header

IKE = bytes(range(1, 29)) + b"payload"  # 28 bytes standing in for an ISAKMP header + body
ESP = b"\x12\x34\x56\x78" + struct.pack("!I", 1) + bytes(range(200))


def test_builders_match_rfc8229_layout() -> None:
    assert frame_ike(IKE) == struct.pack("!H", len(IKE) + 6) + bytes(4) + IKE
    assert frame_esp(ESP) == struct.pack("!H", len(ESP) + 2) + ESP
    assert esp_record_header(len(ESP)) == frame_esp(ESP)[:2]
    assert bytes([0x49, 0x4B, 0x45, 0x54, 0x43, 0x50]) == STREAM_PREFIX  # "IKETCP"


@pytest.mark.parametrize(
    ("build", "payload", "match"),
    [
        (frame_esp, bytes(4) + bytes(20), "SPI 0"),
        (frame_esp, b"\x01\x02\x03", "cannot be framed"),
        (frame_esp, b"\x01" * 65534, "cannot be framed"),
        (frame_ike, b"\x01" * 65530, "does not fit"),
    ],
)
def test_builders_refuse_what_cannot_be_read_back(build, payload: bytes, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build(payload)


def stream_of(records: list[tuple[Kind, bytes]], prefix: bool = True) -> bytes:
    body = b"".join(frame_ike(p) if k is Kind.IKE else frame_esp(p) for k, p in records)
    return (STREAM_PREFIX if prefix else b"") + body


def test_whole_stream_in_one_chunk() -> None:
    records = [(Kind.IKE, IKE), (Kind.ESP, ESP), (Kind.ESP, ESP[:8]), (Kind.IKE, b"x")]
    d = StreamDeframer(expect_prefix=True)
    assert d.feed(stream_of(records)) == records
    assert d.errors == {} and d.fatal is None and d.buffered == 0 and d.records == 4


def test_every_split_point_and_byte_by_byte() -> None:
    records = [(Kind.IKE, IKE), (Kind.ESP, ESP), (Kind.ESP, ESP)]
    wire = stream_of(records)
    for cut in range(len(wire) + 1):
        d = StreamDeframer(expect_prefix=True)
        assert d.feed(wire[:cut]) + d.feed(wire[cut:]) == records, cut
    d = StreamDeframer(expect_prefix=True)
    got = [r for i in range(len(wire)) for r in d.feed(wire[i : i + 1])]
    assert got == records and d.buffered == 0


def test_client_side_has_no_prefix_and_a_prefix_there_is_just_a_length() -> None:
    d = StreamDeframer(expect_prefix=False)
    assert d.feed(stream_of([(Kind.ESP, ESP)], prefix=False)) == [(Kind.ESP, ESP)]
    # "IK" read as a length is 0x494B = 18763 > DEFAULT_MAX_RECORD: skipped and counted
    d = StreamDeframer(expect_prefix=False)
    wire = stream_of([(Kind.ESP, ESP)])
    wire += bytes(0x494B - len(wire))  # the rest of that "record"
    assert d.feed(wire) == [] and d.errors == {"oversize": 1} and d.fatal is None
    assert d.feed(frame_esp(ESP)) == [(Kind.ESP, ESP)]  # and the stream is still in step


def test_wrong_prefix_is_fatal_as_soon_as_it_differs() -> None:
    d = StreamDeframer(expect_prefix=True)
    assert d.feed(b"IKE") == [] and d.fatal is None  # a correct start so far
    assert d.feed(b"X") == []
    assert d.fatal is not None and "IKETCP" in d.fatal and d.errors == {"bad_prefix": 1}
    assert d.feed(stream_of([(Kind.ESP, ESP)], prefix=False)) == []
    assert d.errors["after_fatal"] == 1


def test_length_below_two_is_fatal_and_names_the_offset() -> None:
    d = StreamDeframer(expect_prefix=True)
    wire = stream_of([(Kind.ESP, ESP)]) + b"\x00\x01" + frame_esp(ESP)
    assert d.feed(wire) == [(Kind.ESP, ESP)]  # records before the damage still count
    assert d.errors == {"bad_length": 1}
    assert d.fatal is not None and f"offset {6 + len(ESP) + 2}" in d.fatal


def test_short_and_empty_records_are_skipped_and_counted() -> None:
    d = StreamDeframer(expect_prefix=False)
    wire = (
        b"\x00\x02"  # empty record
        + b"\x00\x05\xff\xff\xff"  # 3-byte body: neither marker nor SPI
        + b"\x00\x06" + bytes(4)  # marker and no IKE message
        + b"\x00\x09" + b"\x01" * 7  # 7 bytes of "ESP": shorter than SPI + sequence
        + frame_esp(ESP)
    )  # fmt: skip
    assert d.feed(wire) == [(Kind.ESP, ESP)]
    assert d.errors == {"short_record": 2, "empty_ike": 1, "short_esp": 1}
    assert d.fatal is None


def test_oversize_record_is_skipped_across_chunks_without_buffering_it() -> None:
    d = StreamDeframer(expect_prefix=False, max_record=1024)
    big = b"\x01" * 5000
    wire = frame_esp(big) + frame_esp(ESP)
    got = []
    for i in range(0, len(wire), 700):
        got += d.feed(wire[i : i + 700])
        assert d.buffered <= 1024
    assert got == [(Kind.ESP, ESP)] and d.errors == {"oversize": 1}


def test_buffer_is_bounded_by_the_largest_record() -> None:
    d = StreamDeframer(expect_prefix=False)
    d.feed(frame_esp(b"\x01" * (DEFAULT_MAX_RECORD - 2))[:-1])
    assert d.buffered == DEFAULT_MAX_RECORD - 1
    assert d.feed(b"\x01") == [(Kind.ESP, b"\x01" * (DEFAULT_MAX_RECORD - 2))]
    assert d.buffered == 0


def test_max_record_is_validated() -> None:
    for bad in (9, 65536):
        with pytest.raises(ValueError, match="max_record"):
            StreamDeframer(expect_prefix=False, max_record=bad)


record_st = st.one_of(
    st.tuples(st.just(Kind.IKE), st.binary(min_size=1, max_size=600)),
    st.tuples(
        st.just(Kind.ESP),
        st.binary(min_size=8, max_size=600).filter(lambda b: b[:4] != bytes(4)),
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(record_st, max_size=20), st.randoms(use_true_random=False))
def test_any_records_survive_any_segmentation(records, rnd: random.Random) -> None:
    wire = stream_of(records)
    d = StreamDeframer(expect_prefix=True)
    got, pos = [], 0
    while pos < len(wire):
        step = rnd.randint(1, 200)
        got += d.feed(wire[pos : pos + step])
        pos += step
    assert got == records and d.errors == {} and d.buffered == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=30), st.booleans())
def test_garbage_never_raises_and_stays_bounded(chunks: list[bytes], prefix: bool) -> None:
    d = StreamDeframer(expect_prefix=prefix, max_record=2048)
    for chunk in chunks:
        for kind, payload in d.feed(chunk):
            assert kind in (Kind.IKE, Kind.ESP)
            assert len(payload) <= 2048
            if kind is Kind.ESP:
                assert len(payload) >= 8 and payload[:4] != bytes(4)
        assert d.buffered < 2048
    assert d.bytes_in == sum(map(len, chunks))
