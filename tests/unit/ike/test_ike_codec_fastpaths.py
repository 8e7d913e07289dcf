"""The codec's fast paths (issue 13, branch ikefast) against the encoders they replaced:
byte for byte on the captured VPN 3000 message and on random attributes and chains."""

from __future__ import annotations

import random
import struct

from labctl.ike.attributes import Attribute, decode_attributes, encode_attributes
from labctl.ike.codec import GENERIC_HEADER, decode_message, encode_chain
from labctl.ike.payloads import AttributePayload, HashPayload, NoncePayload, NotifyPayload
from labctl.ike.sa_payload import Proposal, SaPayload, Transform
from tests.unit.ike.test_ike_codec import VPN3000_AM2


def _old_attribute(a: Attribute) -> bytes:
    """Attribute.encode before the named tuple."""
    if isinstance(a.value, int):
        return struct.pack("!HH", a.type | 0x8000, a.value)
    return struct.pack("!HH", a.type, len(a.value)) + a.value


def _old_chain(payloads) -> bytes:
    """encode_chain before the one-pass join."""
    items = list(payloads)
    out = bytearray()
    for i, p in enumerate(items):
        body = p.encode_body()
        nxt = items[i + 1].payload_type if i + 1 < len(items) else 0
        out += struct.pack("!BBH", nxt, 0, len(body) + 4)
        out += body
    return bytes(out)


def _random_attributes(rng: random.Random) -> list[Attribute]:
    attrs = []
    for _ in range(rng.randint(0, 8)):
        t = rng.randint(0, 0x7FFF)
        if rng.random() < 0.5:
            attrs.append(Attribute(t, rng.randint(0, 0xFFFF)))
        else:
            attrs.append(Attribute(t, rng.randbytes(rng.randint(0, 40))))
    return attrs


def test_the_captured_message_re_encodes_byte_for_byte_both_ways() -> None:
    msg = decode_message(VPN3000_AM2)
    chain = VPN3000_AM2[28:]
    assert encode_chain(msg.payloads) == _old_chain(msg.payloads) == chain
    assert encode_chain(list(msg.payloads)) == encode_chain(iter(msg.payloads)) == chain
    assert msg.encode() == VPN3000_AM2
    (sa,) = [p for p in msg.payloads if isinstance(p, SaPayload)]
    for t in sa.proposals[0].transforms:
        assert encode_attributes(t.attributes) == b"".join(map(_old_attribute, t.attributes))


def test_attributes_encode_as_before_and_decode_to_the_same_values() -> None:
    rng = random.Random(13)
    for _ in range(500):
        attrs = _random_attributes(rng)
        data = encode_attributes(attrs)
        assert data == b"".join(map(_old_attribute, attrs))
        assert [a.encode() for a in attrs] == [_old_attribute(a) for a in attrs]
        decoded = decode_attributes(data)
        assert decoded == tuple(attrs)
        # decoded without validation, yet the same values a validated Attribute holds
        assert all(type(a) is Attribute and Attribute(*a) == a for a in decoded)


def test_random_chains_encode_as_before() -> None:
    rng = random.Random(7)
    for _ in range(200):
        payloads = []
        for _ in range(rng.randint(0, 5)):
            kind = rng.randrange(4)
            if kind == 0:
                payloads.append(HashPayload(rng.randbytes(20)))
            elif kind == 1:
                payloads.append(
                    AttributePayload(rng.randint(1, 4), 7, tuple(_random_attributes(rng)))
                )
            elif kind == 2:
                payloads.append(NotifyPayload(rng.randint(1, 40000), 1, rng.randbytes(4)))
            else:
                t = Transform(1, 12, tuple(_random_attributes(rng)))
                payloads.append(SaPayload((Proposal(1, 3, rng.randbytes(4), (t,)),)))
        assert encode_chain(payloads) == _old_chain(payloads)


def test_the_hash_payload_prepended_to_an_encoded_chain_is_the_old_two_pass_encoding() -> None:
    """IkeSa.protected encodes its payloads once and puts HASH in front of the bytes."""
    payloads = [NoncePayload(b"\x01" * 16), AttributePayload(1, 2, (Attribute(16521, b""),))]
    digest = b"\x09" * 20
    chain = encode_chain(payloads)
    front = GENERIC_HEADER.pack(payloads[0].payload_type, 0, len(digest) + 4) + digest
    assert front + chain == _old_chain([HashPayload(digest), *payloads])
