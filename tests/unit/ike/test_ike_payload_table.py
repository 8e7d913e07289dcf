"""The one payload-decoding table: every payload type the codec knows has its decoder there,
and each decoder reads back what its payload class encodes."""

from __future__ import annotations

import dataclasses
import typing

import pytest

import labctl.ike.payloads as p
from labctl.ike.attributes import Attribute
from labctl.ike.codec import (
    EncryptedMessage,
    Header,
    Message,
    decode_chain,
    decode_header,
    decode_message,
    encode_chain,
)
from labctl.ike.constants import PayloadType
from labctl.ike.payloads import PAYLOAD_DECODERS, Payload, RawPayload, decode_payload
from labctl.ike.sa_payload import Proposal, SaPayload, Transform


def _sample(cls: type):
    """One value of each payload class (the simplest constructor arguments it takes)."""
    examples = {
        SaPayload: SaPayload((Proposal(1, 1, b"", (Transform(1, 1, (Attribute(1, 5),)),)),)),
        p.KePayload: p.KePayload(b"\x01" * 128),
        p.IdPayload: p.IdPayload.key_id("ciscovpn"),
        p.CertPayload: p.CertPayload(4, b"der"),
        p.CertRequestPayload: p.CertRequestPayload(4, b""),
        p.HashPayload: p.HashPayload(b"\x02" * 16),
        p.SigPayload: p.SigPayload(b"sig"),
        p.NoncePayload: p.NoncePayload(b"\x03" * 20),
        p.NotifyPayload: p.NotifyPayload(24578, 1, b"\x04" * 16, b"data"),
        p.DeletePayload: p.DeletePayload(3, (b"\x05" * 4, b"\x06" * 4)),
        p.VendorIdPayload: p.VendorIdPayload(b"\x07" * 16),
        p.AttributePayload: p.AttributePayload(1, 7, (Attribute(1, b"\x0a\x00\x00\x01"),)),
        p.NatDPayload: p.NatDPayload(b"\x08" * 16, draft=True),
        p.NatOaPayload: p.NatOaPayload(1, b"\x0a\x00\x00\x02"),
        RawPayload: RawPayload(132, b"fragment"),
    }
    return examples[cls]


@pytest.mark.parametrize("cls", typing.get_args(Payload), ids=lambda c: c.__name__)
def test_every_payload_class_round_trips_through_the_table(cls: type) -> None:
    value = _sample(cls)
    if cls is not RawPayload:
        assert value.payload_type in PAYLOAD_DECODERS
    assert decode_payload(value.payload_type, value.encode_body(), 0) == value
    (decoded,) = decode_chain(value.payload_type, encode_chain([value])).payloads
    assert decoded == value
    # the decoder builds values without __init__ (labctl.ike.records): every field is set,
    # nested proposals / transforms included, and the value stays frozen
    assert type(decoded) is type(value)
    assert vars(decoded) == vars(value)
    if isinstance(value, SaPayload):
        for got, sent in zip(decoded.proposals, value.proposals, strict=True):
            assert vars(got) == vars(sent)
            assert [vars(t) for t in got.transforms] == [vars(t) for t in sent.transforms]
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.payload_type = 0


def test_decoded_headers_and_messages_are_what_their_constructors_make() -> None:
    payloads = (_sample(p.HashPayload), _sample(p.NotifyPayload), _sample(SaPayload))
    msg = Message(b"\x01" * 8, b"\x02" * 8, 4, payloads, 0, 0)
    data = msg.encode()
    decoded = decode_message(data)
    assert vars(decode_header(data)) == vars(
        Header(b"\x01" * 8, b"\x02" * 8, PayloadType.HASH, 4, 0, 0, len(data))
    )
    assert set(vars(decoded)) == set(vars(msg))
    assert decoded == msg and hash(decoded) == hash(msg)
    assert decoded.raw == data and len(decoded.spans) == 3
    enc = decode_message(Header(b"\x01" * 8, b"\x02" * 8, 8, 5, 1, 7, 44).encode() + bytes(16))
    assert isinstance(enc, EncryptedMessage) and enc.ciphertext == bytes(16)
    assert set(vars(enc)) == {"header", "ciphertext"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.flags = 1


def test_the_table_covers_every_payload_type_but_unknown_ones() -> None:
    undecoded = {t for t in PayloadType if t not in PAYLOAD_DECODERS}
    # NONE ends a chain; Cisco's fragments are kept as raw payloads on purpose.
    assert undecoded == {PayloadType.NONE, PayloadType.CISCO_FRAGMENT}


def test_evolve_is_dataclasses_replace_for_mode_config() -> None:
    """records.evolve (ModeConfig copies on the per-session path) makes what replace makes."""
    from ipaddress import IPv4Address

    from labctl.ike.modecfg import ModeConfig
    from labctl.ike.records import evolve

    base = ModeConfig(banner="hello", dns=(IPv4Address("10.0.0.53"),), pfs=True)
    changes = {"app_version": "Cisco Systems VPN Concentrator", "udp_encap_port": 4500}
    got, want = evolve(base, **changes), dataclasses.replace(base, **changes)
    assert got == want and vars(got) == vars(want) and hash(got) == hash(want)
    assert vars(base)["app_version"] is None  # the original is untouched
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.banner = "changed"
