"""What a session no longer rebuilds (issue 13, helper ike3): SA payloads decoded once per
distinct byte string (a hit is the value a fresh decode makes, malformed bytes raise every
time, the table stays bounded), transforms read once per value, vendor-ID runs built once
per configuration, canonical IPv4 text converted without ipaddress."""

from __future__ import annotations

import ipaddress
import random

import pytest

from labctl.ike import proposals, sa_payload
from labctl.ike.addrs import canonical_ipv4, host_network, packed_ip
from labctl.ike.attributes import Attribute
from labctl.ike.config import Phase1Proposal, Phase2Proposal, VendorIdentity
from labctl.ike.constants import (
    AuthMethod,
    EncapMode,
    EspAuth,
    EspTransform,
    P1Encryption,
    P1Hash,
)
from labctl.ike.errors import IkeDecodeError, IkeProtocolError
from labctl.ike.exchanges.phase1 import leading_vids, trailing_vids
from labctl.ike.payloads import IdPayload
from labctl.ike.sa_payload import Proposal, SaPayload, Transform
from labctl.ike.vendor import NattVersion


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


def test_transform_readers_give_what_a_fresh_read_gives_and_refuse_every_time() -> None:
    p1 = proposals.phase1_transform(
        1, Phase1Proposal(P1Encryption.AES_CBC, 128, P1Hash.SHA1, 2, AuthMethod.XAUTH_INIT_PSK)
    )
    esp = proposals.esp_transform(
        1, Phase2Proposal(EspTransform.AES_CBC, 128, EspAuth.HMAC_SHA1), EncapMode.TUNNEL, 3600
    )
    for read, t in (
        (proposals.parse_phase1_transform, p1),
        (proposals.parse_esp_transform, esp),
    ):
        fresh = read.__wrapped__(t)
        assert read(t) == fresh and read(Transform(t.number, t.transform_id, t.attributes)) == fresh
        # the same attributes with an unknown one added: refused, on every call
        bad = Transform(t.number, t.transform_id, (*t.attributes, Attribute(16000, 1)))
        for _ in range(2):
            with pytest.raises(IkeProtocolError, match="not supported"):
                read(bad)


def test_vendor_id_runs_are_the_same_payloads_each_time() -> None:
    ident = VendorIdentity(cisco_client=True)
    natt = (NattVersion.RFC3947, NattVersion.DRAFT_02N)
    first = leading_vids(ident, natt)
    assert isinstance(first, tuple) and leading_vids(ident, natt) == first
    assert len(first) == 3 + len(natt)
    assert leading_vids(VendorIdentity(unity=False, dpd=False), ()) == (leading_vids(ident, ())[1],)
    assert (
        len(trailing_vids(ident)) == 3
        and trailing_vids(VendorIdentity()) == (trailing_vids(ident)[:2])
    )


@pytest.mark.parametrize(
    "text",
    [
        "10.200.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "171.69.89.78",
        "1.2.3",
        "1.2.3.4.5",
        "01.2.3.4",
        "1.2.3.256",
        "+1.2.3.4",
        " 1.2.3.4",
        "1.2.3.4 ",
        "1_0.2.3.4",
        "1.2.3.-0",
        "\u0661.2.3.4",
        "1..3.4",
        "",
        "::1",
        "fe80::1",
        "a.b.c.d",
        "1.2.3.4/32",
    ],
)
def test_canonical_ipv4_agrees_with_ipaddress(text: str) -> None:
    try:
        expected: bytes | None = ipaddress.IPv4Address(text).packed
    except ValueError:
        expected = None
    got = canonical_ipv4(text)
    assert got is None or got == expected  # None: ipaddress decides (and raises) itself
    if expected is not None and text == str(ipaddress.IPv4Address(text)):
        assert got == expected  # every canonical address takes the quick path
    if expected is not None:
        assert IdPayload.ipv4(text).data == packed_ip(text) == expected
        assert host_network(text) == ipaddress.IPv4Network(text)


def test_canonical_ipv4_on_random_addresses() -> None:
    rng = random.Random(4)
    for _ in range(2000):
        addr = ipaddress.IPv4Address(rng.getrandbits(32))
        assert canonical_ipv4(str(addr)) == addr.packed
    assert canonical_ipv4(ipaddress.IPv4Address("1.2.3.4")) is None  # objects: ipaddress's way
