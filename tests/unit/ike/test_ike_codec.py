"""ISAKMP codec: real packets, exact round trips, precise errors."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl.ike import codec
from labctl.ike.codec import (
    Attribute,
    AttributePayload,
    CertPayload,
    CertRequestPayload,
    DeletePayload,
    EncryptedMessage,
    HashPayload,
    IdPayload,
    KePayload,
    Message,
    NatDPayload,
    NatOaPayload,
    NoncePayload,
    NotifyPayload,
    Proposal,
    RawPayload,
    SaPayload,
    SigPayload,
    Transform,
    VendorIdPayload,
    decode_attributes,
    decode_chain,
    decode_header,
    decode_message,
)
from labctl.ike.constants import ExchangeType, IdType, PayloadType
from labctl.ike.errors import IkeDecodeError
from labctl.ike.vendor import VID_CISCO_UNITY, VID_DPD, VID_XAUTH, vpn3000_vid

# A real VPN 3000 (v3.0.5) aggressive-mode message 2, as stored in vpnc 0.5.3's
# isakmp-pkt.c test_pack_unpack() (streambinder/vpnc @21dd0a8).  Independent data: captured
# from Cisco's concentrator, not produced by this codec.
VPN3000_AM2 = bytes.fromhex(
    "7fba5129119e76f79a71ee70aa82b97f01100400000000000000014c0400002c00000001000000010000002001010001"
    "0000001800010000800100058002000180040002800300010a0000841b1d4b290e29b96f1834d12dba927c5335760e3b"
    "25924f7c1e31418cb9e3daf753d3228effebed5b95568dbaa8e32a9bb4045c90f0fe92c857a2c60c85bb56e81ca72c57"
    "04b6e04382e19f0ba68bce7f9b75bbd3ff0e8919afc62ef69206464fc79722f4a6f9263404338934a92f8192d3214f45"
    "be381226ec8745dd101cd6160500001877df373c0302e2c8e12f92f02ea2a600178fdfb40800000c011101f4cdb4536d"
    "0d00001407478da70bd6d1667aaf2e612a9180940d00001412f5f28c457168a9702d9fe274cc01000d00000c09002689"
    "dfd6b7120d000014afcad71368a1f1c96b8696fc77570100000000141f07f70eaa6514d3b0fa96542a500305"
)


class TestRealPacket:
    def test_vpn3000_message2_decodes_as_documented(self) -> None:
        msg = decode_message(VPN3000_AM2)
        assert isinstance(msg, Message)
        assert msg.exchange == ExchangeType.AGGRESSIVE
        assert msg.flags == 0 and msg.message_id == 0
        kinds = [type(p).__name__ for p in msg.payloads]
        assert kinds == [
            "SaPayload",
            "KePayload",
            "NoncePayload",
            "IdPayload",
            "HashPayload",
            "VendorIdPayload",
            "VendorIdPayload",
            "VendorIdPayload",
            "VendorIdPayload",
        ]
        sa = msg.payloads[0]
        assert sa.doi == 1 and sa.situation == 1
        (prop,) = sa.proposals
        assert (prop.number, prop.protocol, prop.spi) == (1, 1, b"")
        (t,) = prop.transforms
        assert (t.number, t.transform_id) == (0, 1)
        # 3DES, MD5, group 2, PSK -- TV attributes, no lifetime
        assert t.attributes == (Attribute(1, 5), Attribute(2, 1), Attribute(4, 2), Attribute(3, 1))
        assert len(msg.payloads[1].data) == 128
        assert len(msg.payloads[2].data) == 20
        ident = msg.payloads[3]
        assert (ident.id_type, ident.protocol, ident.port) == (IdType.IPV4_ADDR, 17, 500)
        assert ident.describe() == "205.180.83.109/32"
        assert len(msg.payloads[4].data) == 16
        vids = [p.data for p in msg.payloads[5:]]
        assert vids == [VID_CISCO_UNITY, VID_XAUTH, VID_DPD, vpn3000_vid(3, 5)]

    def test_vpn3000_message2_reencodes_byte_exact(self) -> None:
        msg = decode_message(VPN3000_AM2)
        assert msg.encode() == VPN3000_AM2

    def test_spans_point_at_raw_payloads(self) -> None:
        msg = decode_message(VPN3000_AM2)
        sa_raw = msg.raw_payload(0)
        assert sa_raw[:4] == bytes.fromhex("0400002c")
        assert codec.encode_chain([msg.payloads[0]])[4:] == sa_raw[4:]


def _sample_payloads() -> list:
    return [
        SaPayload(
            (
                Proposal(
                    1,
                    3,
                    b"\x01\x02\x03\x04",
                    (
                        Transform(
                            1,
                            12,
                            (Attribute(1, 1), Attribute(2, b"\x00\x20\xc4\x9b"), Attribute(6, 256)),
                        ),
                        Transform(2, 3, ()),
                    ),
                ),
                Proposal(2, 3, b"\x05\x06\x07\x08", ()),
            )
        ),
        KePayload(bytes(range(128))),
        NoncePayload(b"n" * 20),
        IdPayload.key_id("ciscovpn"),
        IdPayload.ipv4_subnet("0.0.0.0/0"),
        HashPayload(b"h" * 20),
        SigPayload(b"sig"),
        CertPayload(4, b"cert"),
        CertRequestPayload(4, b""),
        NotifyPayload(24578, 1, b"c" * 16),
        NotifyPayload(36136, 1, b"c" * 16, b"\x00\x00\x00\x07"),
        DeletePayload(3, (b"\x00\x00\x01\x00", b"\xff\xff\xff\xff")),
        DeletePayload(1, (b"x" * 16,), 16),
        VendorIdPayload(VID_XAUTH),
        AttributePayload(1, 20, (Attribute(1, b""), Attribute(0x7005, 4500))),
        NatDPayload(b"d" * 20),
        NatDPayload(b"e" * 16, draft=True),
        NatOaPayload(1, b"\x0a\x0a\x0a\x02"),
        NatOaPayload(1, b"\x0a\x0a\x0a\x03", draft=True),
        RawPayload(132, b"fragment"),
    ]


class TestRoundTrip:
    def test_every_payload_type(self) -> None:
        msg = Message(
            b"\x11" * 8, b"\x22" * 8, ExchangeType.INFORMATIONAL, tuple(_sample_payloads())
        )
        data = msg.encode()
        back = decode_message(data)
        assert back == msg
        assert back.encode() == data

    def test_natd_payload_numbers(self) -> None:
        chain = codec.encode_chain([NatDPayload(b"a" * 16), NatDPayload(b"b" * 16, draft=True)])
        assert chain[0] == PayloadType.NAT_D_DRAFT  # next-payload of the first = 130
        msg = Message(b"\x01" * 8, b"\x02" * 8, 2, (NatDPayload(b"a" * 16),))
        assert msg.encode()[16] == 20

    def test_attribute_forms(self) -> None:
        assert Attribute(12, 86400 & 0xFFFF).encode() == bytes.fromhex("800c5180")
        assert Attribute.number(12, 86400) == Attribute(12, (86400).to_bytes(4, "big"))
        assert Attribute.number(12, 28800) == Attribute(12, 28800)
        assert Attribute.number(12, 86400).encode() == bytes.fromhex("000c000400015180")
        assert decode_attributes(bytes.fromhex("800c5180000c000400015180")) == (
            Attribute(12, 0x5180),
            Attribute(12, b"\x00\x01\x51\x80"),
        )
        with pytest.raises(ValueError):
            Attribute(1, 70000)
        with pytest.raises(ValueError):
            Attribute(0x8001, 1)

    def test_encrypted_message_is_left_alone(self) -> None:
        header = codec.Header(b"\x01" * 8, b"\x02" * 8, 8, 6, 1, 5, 28 + 16)
        data = header.encode() + b"\xaa" * 16
        m = decode_message(data)
        assert isinstance(m, EncryptedMessage)
        assert m.ciphertext == b"\xaa" * 16

    def test_padding_after_chain_only_in_decrypted_bodies(self) -> None:
        chain = codec.encode_chain([HashPayload(b"h" * 16)])
        with pytest.raises(IkeDecodeError) as err:
            decode_chain(PayloadType.HASH, chain + b"\x00\x00\x01", base_offset=28)
        assert err.value.offset == 28 + len(chain)
        ok = decode_chain(PayloadType.HASH, chain + b"\x00\x00\x01", allow_trailing=True)
        assert ok.end == len(chain)


class TestErrors:
    def test_short_datagram(self) -> None:
        with pytest.raises(IkeDecodeError) as err:
            decode_message(b"\x01" * 10)
        assert err.value.offset == 0

    def test_length_mismatch(self) -> None:
        data = bytearray(VPN3000_AM2)
        with pytest.raises(IkeDecodeError) as err:
            decode_message(bytes(data[:-1]))
        assert err.value.offset == 24
        assert "332" in err.value.reason

    def test_major_version(self) -> None:
        data = bytearray(VPN3000_AM2)
        data[17] = 0x20
        with pytest.raises(IkeDecodeError) as err:
            decode_message(bytes(data))
        assert err.value.offset == 17 and err.value.notify == 5

    def test_reserved_byte_in_payload_header(self) -> None:
        data = bytearray(VPN3000_AM2)
        data[28 + 1] = 1  # SA payload reserved byte
        with pytest.raises(IkeDecodeError) as err:
            decode_message(bytes(data))
        assert err.value.offset == 29

    def test_transform_count_mismatch(self) -> None:
        data = bytearray(VPN3000_AM2)
        data[28 + 12 + 7] = 2  # proposal says 2 transforms, holds 1
        with pytest.raises(IkeDecodeError) as err:
            decode_message(bytes(data))
        assert err.value.offset == 28 + 12 + 7
        assert err.value.notify == 15

    def test_payload_length_overrun(self) -> None:
        data = bytearray(VPN3000_AM2)
        struct.pack_into("!H", data, 28 + 2, 0x0FFF)
        with pytest.raises(IkeDecodeError) as err:
            decode_message(bytes(data))
        assert err.value.offset == 30
        assert "runs past the end" in err.value.reason

    def test_attribute_overrun(self) -> None:
        with pytest.raises(IkeDecodeError) as err:
            decode_attributes(bytes.fromhex("00070010414243"), base_offset=100)
        assert err.value.offset == 100

    def test_delete_spi_arithmetic(self) -> None:
        body = struct.pack("!IBBH", 1, 3, 4, 2) + b"\x00" * 7
        chain = struct.pack("!BBH", 0, 0, 4 + len(body)) + body
        with pytest.raises(IkeDecodeError) as err:
            decode_chain(PayloadType.DELETE, chain)
        assert "do not fill" in err.value.reason

    def test_proposal_outside_sa(self) -> None:
        chain = struct.pack("!BBH", 0, 0, 8) + b"\x01\x01\x00\x00"
        with pytest.raises(IkeDecodeError) as err:
            decode_chain(PayloadType.PROPOSAL, chain)
        assert err.value.notify == 1

    def test_zero_initiator_cookie(self) -> None:
        data = bytearray(VPN3000_AM2)
        data[0:8] = bytes(8)
        with pytest.raises(IkeDecodeError):
            decode_header(bytes(data))


# -- property tests ---------------------------------------------------------------------------

_bytes = st.binary(max_size=40)
_attr = st.one_of(
    st.builds(Attribute, st.integers(0, 0x7FFF), st.integers(0, 0xFFFF)),
    st.builds(Attribute, st.integers(0, 0x7FFF), _bytes),
)
_attrs = st.lists(_attr, max_size=5).map(tuple)
_transform = st.builds(Transform, st.integers(0, 255), st.integers(0, 255), _attrs)
_proposal = st.builds(
    Proposal,
    st.integers(0, 255),
    st.integers(0, 255),
    st.binary(max_size=16),
    st.lists(_transform, max_size=3).map(tuple),
)
_payload = st.one_of(
    st.builds(
        SaPayload,
        st.lists(_proposal, max_size=3).map(tuple),
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**32 - 1),
    ),
    st.builds(KePayload, _bytes),
    st.builds(NoncePayload, _bytes),
    st.builds(HashPayload, _bytes),
    st.builds(VendorIdPayload, _bytes),
    st.builds(IdPayload, st.integers(0, 255), _bytes, st.integers(0, 255), st.integers(0, 65535)),
    st.builds(
        NotifyPayload,
        st.integers(0, 65535),
        st.integers(0, 255),
        st.binary(max_size=16),
        _bytes,
        st.integers(0, 2**32 - 1),
    ),
    st.integers(1, 4).flatmap(
        lambda n: st.builds(
            DeletePayload,
            st.integers(0, 255),
            st.lists(st.binary(min_size=n, max_size=n), max_size=3).map(tuple),
            st.just(n),
        )
    ),
    st.builds(AttributePayload, st.integers(0, 255), st.integers(0, 65535), _attrs),
    st.builds(NatDPayload, _bytes, st.booleans()),
    st.builds(NatOaPayload, st.integers(0, 255), _bytes, st.booleans()),
    st.builds(CertPayload, st.integers(0, 255), _bytes),
    st.builds(RawPayload, st.sampled_from([15, 16, 99, 132, 200]), _bytes),
)
_message = st.builds(
    Message,
    st.binary(min_size=8, max_size=8).filter(lambda c: c != bytes(8)),
    st.binary(min_size=8, max_size=8),
    st.integers(0, 255),
    st.lists(_payload, max_size=6).map(tuple),
    st.sampled_from([0, 2, 4, 6]),
    st.integers(0, 2**32 - 1),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_message)
def test_decode_inverts_encode(msg: Message) -> None:
    data = msg.encode()
    assert decode_message(data) == msg


@settings(max_examples=400, deadline=None)
@given(st.binary(min_size=0, max_size=300))
def test_random_bytes_raise_only_decode_errors(data: bytes) -> None:
    try:
        msg = decode_message(data)
    except IkeDecodeError:
        return
    if isinstance(msg, Message):
        assert msg.encode() == data


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_mutated_real_packet(data) -> None:
    buf = bytearray(VPN3000_AM2)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        buf[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    sample = bytes(buf[:cut]) if data.draw(st.booleans()) else bytes(buf)
    try:
        msg = decode_message(sample)
    except IkeDecodeError as exc:
        assert 0 <= exc.offset <= len(sample)
        return
    if isinstance(msg, Message):
        assert msg.encode() == sample
