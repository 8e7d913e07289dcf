"""SA payloads decoded once per distinct byte string (issue 13, helper ike3): a hit is the
value a fresh decode makes, malformed bytes raise every time, and the table stays bounded."""

from __future__ import annotations

import random

import pytest

from labctl.ike import sa_payload
from labctl.ike.attributes import Attribute
from labctl.ike.errors import IkeDecodeError
from labctl.ike.sa_payload import Proposal, SaPayload, Transform


def _offer(n: int) -> SaPayload:
    t = Transform(1, 1, (Attribute(1, 7), Attribute(14, 128 + n), Attribute(12, b"\x00" * 4)))
    return SaPayload((Proposal(1, 1, b"", (t,)),))


def test_a_hit_equals_a_fresh_decode() -> None:
    body = _offer(0).encode_body()
    first = SaPayload.decode(body, 40)
    again = SaPayload.decode(bytes(body), 99)  # equal bytes, another object and offset
    assert again == first == SaPayload._decode(body, 0) == _offer(0)
    assert vars(again) == vars(_offer(0))


def test_malformed_bytes_raise_every_time_and_are_not_kept() -> None:
    body = _offer(1).encode_body()[:-3]  # the proposal's length runs past the end
    for _ in range(3):
        with pytest.raises(IkeDecodeError) as err:
            SaPayload.decode(body, 100)
        assert err.value.offset >= 100  # offsets still count from this call's base
    assert body not in sa_payload._DECODED


def test_the_table_is_bounded_against_random_payloads() -> None:
    rng = random.Random(13)
    for i in range(3 * sa_payload._CACHED_MAX):
        spi = rng.randbytes(4)
        body = SaPayload((Proposal(1, 3, spi, (Transform(1, 12, (Attribute(4, i & 0xFFFF),)),)),))
        assert SaPayload.decode(body.encode_body(), 0) == body
    assert len(sa_payload._DECODED) <= sa_payload._CACHED_MAX


def test_views_and_huge_bodies_decode_without_the_table() -> None:
    body = _offer(2).encode_body()
    assert SaPayload.decode(memoryview(body), 0) == _offer(2)  # type: ignore[arg-type]
    big = SaPayload(
        tuple(Proposal(i + 1, 1, b"", (Transform(1, 1, (Attribute(1, 7),)),)) for i in range(80))
    )
    raw = big.encode_body()
    assert len(raw) > sa_payload._CACHED_BODY_MAX
    assert SaPayload.decode(raw, 0) == big
    assert raw not in sa_payload._DECODED
