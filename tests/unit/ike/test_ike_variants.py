"""What deployed IKEv1 implementations send, decoded AND answered correctly (issue 15).

Each vector is a variant seen from a real peer: a gateway that pads its Mode-Config reply
with zero bytes, vpnc's transforms with Key-Length before the cipher, lifetimes in every
width and order, vendor IDs of Cisco, strongSwan, Microsoft and racoon and unknown ones,
unknown Mode-Config attributes, NUL-terminated strings.  Each goes through the engine: the
variant is produced by one side the way that peer produces it (hashes over the bytes as
sent), and the other side must complete the session.  What stays malformed is refused.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address

import pytest

from labctl.ike import (
    Attribute,
    AttributePayload,
    ExchangeFailed,
    IkeDecodeError,
    ModeConfig,
    ModeConfigReceived,
    PacketDropped,
    Phase1Established,
    Phase1Proposal,
    Phase2Proposal,
    Transform,
    VendorIdPayload,
    decode_message,
)
from labctl.ike import initiator as initiator_module
from labctl.ike.codec import (
    Proposal,
    SaPayload,
    decode_attributes,
    decode_chain,
    encode_chain,
)
from labctl.ike.constants import (
    CfgAttr,
    CfgType,
    EspAuth,
    EspTransform,
    LifeType,
    NotifyType,
    P1Attr,
    P1Encryption,
    P1Hash,
    P2Attr,
    PayloadType,
    ProtocolId,
)
from labctl.ike.exchanges import aggressive, informational, quick_mode
from labctl.ike.proposals import parse_esp_transform, parse_phase1_transform
from labctl.ike.vendor import (
    NATT_VIDS,
    VID_ALTIGA_CLIENT,
    VID_CISCO_UNITY,
    VID_DPD,
    VID_RACOON,
    VID_STRONGSWAN,
    VID_XAUTH,
    NattVersion,
    fragmentation_vid,
    vpn3000_vid,
)
from tests.unit.ike.builders import add_client, assert_keys_mirror, child_pairs, connect, make_lab

AES256 = (Phase1Proposal(P1Encryption.AES_CBC, 256, P1Hash.SHA1, 2, lifetime=86400),)
ESP_AES = (Phase2Proposal(EspTransform.AES_CBC, 256, EspAuth.HMAC_SHA1),)


def _established(lab, name: str = "c1") -> tuple[Phase1Established, Phase1Established]:
    (client,) = lab.events_of(name, Phase1Established)
    (server,) = lab.events_of("server", Phase1Established)
    pairs = child_pairs(lab, name)
    assert len(pairs) == 1, "one ESP SA pair"
    assert_keys_mirror(*pairs[0])
    return client, server


def _no_drops(lab, name: str = "c1") -> None:
    assert not lab.events_of("server", PacketDropped), lab.events_of("server", PacketDropped)
    assert not lab.events_of(name, PacketDropped), lab.events_of(name, PacketDropped)


# ---------------------------------------------------------------------------------------------
# The gateway of issue 15: two zero bytes after the last Mode-Config attribute


PADDED: list[int] = []  # how many zero bytes each padded REPLY carried


def _padded_reply(self: AttributePayload) -> bytes:
    """An attribute payload as that gateway writes it: a Mode-Config REPLY padded to a
    multiple of 4 bytes with zeros (at least 2)."""
    body = struct.pack("!BBH", self.cfg_type, 0, self.identifier)
    body += b"".join(a.encode() for a in self.attributes)
    if self.cfg_type == CfgType.REPLY and self.attr(CfgAttr.INTERNAL_IP4_ADDRESS):
        pad = -len(body) % 4 or 2
        PADDED.append(pad)
        body += bytes(pad)
    return body


def test_client_gets_its_address_from_a_zero_padded_mode_config_reply(monkeypatch) -> None:
    monkeypatch.setattr(AttributePayload, "encode_body", _padded_reply)
    PADDED.clear()
    lab = make_lab()
    add_client(lab)
    connect(lab)
    assert PADDED and all(1 <= pad <= 3 for pad in PADDED)  # the gateway did pad
    (got,) = lab.events_of("c1", ModeConfigReceived)
    assert got.config.address == IPv4Address("40.1.1.1")
    _established(lab)
    _no_drops(lab)


def test_padding_is_tolerated_only_when_zero_and_short() -> None:
    attrs = Attribute(CfgAttr.INTERNAL_IP4_ADDRESS, bytes([40, 1, 1, 1])).encode()
    for pad in (b"\0", b"\0\0", b"\0\0\0"):
        assert decode_attributes(attrs + pad) == decode_attributes(attrs)
    with pytest.raises(IkeDecodeError, match="not zero padding"):
        decode_attributes(attrs + b"\0\x07")
    with pytest.raises(IkeDecodeError, match="runs past the end"):
        decode_attributes(attrs[:-1])


def test_the_issues_42_bytes_of_attributes_in_44() -> None:
    """The report: 42 bytes of attributes followed by 2 zero bytes the payload length
    covers ("attribute header truncated (2 bytes left)" before)."""
    values = [
        Attribute(CfgAttr.INTERNAL_IP4_ADDRESS, bytes([10, 7, 0, 5])),
        Attribute(CfgAttr.INTERNAL_IP4_NETMASK, bytes([255, 255, 255, 0])),
        Attribute(CfgAttr.INTERNAL_IP4_DNS, bytes([10, 7, 0, 1])),
        Attribute(CfgAttr.UNITY_SAVE_PASSWD, 0),
        Attribute(CfgAttr.UNITY_BANNER, b"welcome!!!"),
    ]
    attrs = b"".join(a.encode() for a in values)
    assert len(attrs) == 42
    body = struct.pack("!BBH", CfgType.REPLY, 0, 7) + attrs + b"\0\0"
    chain = decode_chain(PayloadType.ATTR, struct.pack("!BBH", 0, 0, 4 + len(body)) + body)
    (decoded,) = chain.payloads
    assert decoded.attributes == tuple(values)
    # what it means survives re-encoding (the padding is not kept)
    assert decode_chain(PayloadType.ATTR, encode_chain([decoded])).payloads == (decoded,)


# ---------------------------------------------------------------------------------------------
# Transforms: attribute order, lifetime widths and orders, padding


def _p1_attrs(p: Phase1Proposal, order: str, width: int) -> list[Attribute]:
    duration = Attribute(P1Attr.LIFE_DURATION, p.lifetime.to_bytes(width, "big"))
    life = [Attribute(P1Attr.LIFE_TYPE, LifeType.SECONDS), duration]
    if order == "duration-first":
        life.reverse()
    core = [
        Attribute(P1Attr.ENCRYPTION, int(p.encryption)),
        Attribute(P1Attr.HASH, int(p.hash)),
        Attribute(P1Attr.GROUP, p.group),
        Attribute(P1Attr.AUTH_METHOD, int(p.auth)),
    ]
    key = [Attribute(P1Attr.KEY_LENGTH, p.key_bits)] if p.key_bits else []
    if order == "vpnc-key-length-first":
        return key + core + life
    if order == "reversed":
        return list(reversed(core + key + life))
    return core + key + life


def _p2_attrs(p: Phase2Proposal, encap: int, order: str, width: int) -> list[Attribute]:
    duration = Attribute(P2Attr.LIFE_DURATION, p.lifetime.to_bytes(width, "big"))
    life = [Attribute(P2Attr.LIFE_TYPE, LifeType.SECONDS), duration]
    if order == "duration-first":
        life.reverse()
    rest = [
        Attribute(P2Attr.KEY_LENGTH, p.key_bits),
        Attribute(P2Attr.AUTH_ALGORITHM, int(p.auth)),
        Attribute(P2Attr.ENCAPSULATION, encap),
    ]
    if order == "reversed":
        return list(reversed(life + rest))
    return rest + life


class PaddedTransform(Transform):
    """A transform whose length covers two zero bytes after its last attribute."""

    def encode(self, last: bool) -> bytes:
        body = struct.pack("!BBH", self.number, self.transform_id, 0)
        body += b"".join(a.encode() for a in self.attributes) + b"\0\0"
        return struct.pack("!BBH", 0 if last else PayloadType.TRANSFORM, 0, 4 + len(body)) + body


VARIANTS = [
    ("vpnc-key-length-first", 4, False),
    ("reversed", 4, False),
    ("duration-first", 4, False),
    ("canonical", 1, False),  # 1-byte lifetime (a 3-byte value needs 3: see width below)
    ("canonical", 8, False),  # 8 bytes, leading zeros
    ("canonical", 12, False),  # wider than any integer type, leading zeros
    ("canonical", 4, True),  # zero padding inside the transform
]


@pytest.mark.parametrize("order,width,padded", VARIANTS)
def test_responder_accepts_and_echoes_transform_variants(
    monkeypatch, order: str, width: int, padded: bool
) -> None:
    lifetime = 200 if width == 1 else 86400  # what fits the width
    p1 = (Phase1Proposal(P1Encryption.AES_CBC, 256, P1Hash.SHA1, 2, lifetime=lifetime),)
    p2 = (Phase2Proposal(EspTransform.AES_CBC, 256, EspAuth.HMAC_SHA1, lifetime=200),)
    cls = PaddedTransform if padded else Transform
    offered: dict[str, Transform] = {}

    def phase1_sa(proposals):
        t = cls(1, 1, tuple(_p1_attrs(proposals[0], order, width)))
        offered["p1"] = t
        return SaPayload((Proposal(1, ProtocolId.ISAKMP, b"", (t,)),))

    def phase2_sa(proposals, spi, encap):
        p2_width = 1 if width == 1 else width
        t = cls(
            1, int(proposals[0].transform), tuple(_p2_attrs(proposals[0], encap, order, p2_width))
        )
        offered["p2"] = t
        return SaPayload((Proposal(1, ProtocolId.ESP, spi, (t,)),))

    monkeypatch.setattr(initiator_module, "phase1_sa", phase1_sa)
    monkeypatch.setattr(quick_mode, "phase2_sa", phase2_sa)
    lab = make_lab(phase1=p1, phase2=p2)
    add_client(lab, phase1=p1, phase2=p2)
    connect(lab)
    _client, server = _established(lab)
    assert server.algorithms.encryption == "aes256-cbc" and server.algorithms.lifetime == lifetime
    _no_drops(lab)
    # the responder answered with the transform exactly as offered (order included)
    msg2 = decode_message(next(f.data for f in lab.capture if f.sender == "server"))
    (reply_sa,) = msg2.find(SaPayload)
    echoed = reply_sa.proposals[0].transforms[0]
    assert [a.type for a in echoed.attributes] == [a.type for a in offered["p1"].attributes]
    assert parse_phase1_transform(echoed).life_seconds == lifetime
    (c, s) = child_pairs(lab, "c1")[0]
    assert c.lifetime_seconds == s.lifetime_seconds == 200


def test_vpnc_aes_offer_key_length_first_gets_a_correct_sa() -> None:
    """The vpnc offer a strict gateway refused: our responder takes it and its SA reply is
    one proposal, one transform, attributes as vpnc wrote them."""
    p = AES256[0]
    t = Transform(0, 1, tuple(_p1_attrs(p, "vpnc-key-length-first", 4)))
    offer = parse_phase1_transform(t)
    assert (offer.encryption, offer.key_bits, offer.hash) == (7, 256, 2)
    assert offer.life_seconds == 86400 and offer.matches(p)


@pytest.mark.parametrize(
    "attrs,problem",
    [
        (
            [Attribute(P1Attr.LIFE_TYPE, 1), Attribute(P1Attr.LIFE_TYPE, 2)],
            "two life types",
        ),
        (
            [Attribute(P1Attr.LIFE_DURATION, 5), Attribute(P1Attr.LIFE_DURATION, 6)],
            "two life durations",
        ),
        ([Attribute(P1Attr.LIFE_DURATION, 5)], "without a life type"),
        ([Attribute(P1Attr.ENCRYPTION, 5)], "given twice"),
        ([Attribute(P1Attr.PRF, 1)], "attribute 13 not supported"),
        ([Attribute(P1Attr.LIFE_TYPE, 1), Attribute(P1Attr.LIFE_DURATION, b"")], "empty"),
    ],
)
def test_ambiguous_transforms_are_declined(attrs, problem: str) -> None:
    base = [
        Attribute(P1Attr.ENCRYPTION, 7),
        Attribute(P1Attr.HASH, 2),
        Attribute(P1Attr.GROUP, 2),
        Attribute(P1Attr.AUTH_METHOD, 65001),
        Attribute(P1Attr.KEY_LENGTH, 256),
    ]
    from labctl.ike import IkeProtocolError

    with pytest.raises(IkeProtocolError, match=problem):
        parse_phase1_transform(Transform(1, 1, tuple(base + attrs)))


def test_esp_transform_in_any_order_with_a_wide_lifetime() -> None:
    p = Phase2Proposal(EspTransform.AES_CBC, 128, EspAuth.HMAC_SHA1, lifetime=3600)
    attrs = list(reversed(_p2_attrs(p, 3, "duration-first", 9)))
    offer = parse_esp_transform(Transform(1, int(EspTransform.AES_CBC), tuple(attrs)))
    assert (offer.key_bits, offer.encapsulation, offer.life_seconds) == (128, 3, 3600)
    assert offer.matches(p)


def test_a_refusal_says_why_each_offer_was_declined() -> None:
    lab = make_lab(phase1=AES256)
    add_client(lab, phase1=(Phase1Proposal(P1Encryption.TRIPLE_DES_CBC, None, P1Hash.MD5, 2),))
    connect(lab)
    (failed,) = lab.events_of("server", ExchangeFailed)
    assert failed.notify == NotifyType.NO_PROPOSAL_CHOSEN
    assert "#1.1: triple_des_cbc/md5/group 2/xauth_init_psk not in policy" in failed.reason


# ---------------------------------------------------------------------------------------------
# Notify data: RESPONDER-LIFETIME written differently


def test_client_honours_a_padded_duration_first_responder_lifetime(monkeypatch) -> None:
    def lifetime_notify(sa):
        data = (
            Attribute(P1Attr.LIFE_DURATION, (3600).to_bytes(8, "big")).encode()
            + Attribute(P1Attr.LIFE_TYPE, LifeType.SECONDS).encode()
            + b"\0\0"
        )
        from labctl.ike import NotifyPayload

        return NotifyPayload(
            NotifyType.RESPONDER_LIFETIME, ProtocolId.ISAKMP, sa.icookie + sa.rcookie, data
        )

    monkeypatch.setattr(informational, "responder_lifetime_notify", lifetime_notify)
    lab = make_lab()
    add_client(lab, phase1=(Phase1Proposal(lifetime=2147483),))
    connect(lab)
    _established(lab)
    assert lab.clients["c1"].engine.current.lifetime == 3600


# ---------------------------------------------------------------------------------------------
# Vendor IDs and Mode-Config attributes we do not act on


CISCO_CLIENT_VIDS = [
    VID_XAUTH,
    VID_DPD,
    fragmentation_vid(),
    NATT_VIDS[NattVersion.RFC3947],
    VID_CISCO_UNITY,
    VID_ALTIGA_CLIENT,
]
OTHER_VIDS = [
    VID_STRONGSWAN,
    VID_RACOON,
    bytes.fromhex("1e2b516905991c7d7c96fcbfb587e46100000009"),  # Microsoft, version 9
    bytes.fromhex("4048b7d56ebce88525e7de7f00d6c2d380000000"),  # fragmentation, IKE frag
    bytes.fromhex("0123456789abcdef0123456789abcdef"),  # nobody's
    b"\x01",  # one byte
]


def test_cisco_strongswan_and_unknown_vendor_ids_are_recognised_or_ignored(monkeypatch) -> None:
    extra = [VendorIdPayload(v) for v in CISCO_CLIENT_VIDS + OTHER_VIDS]
    original = initiator_module.Initiator._vendor_ids
    monkeypatch.setattr(
        initiator_module.Initiator, "_vendor_ids", lambda self: original(self)[:0] + extra
    )
    lab = make_lab()
    add_client(lab)
    connect(lab)
    _, server = _established(lab)
    vendor = server.peer_vendor
    assert vendor.xauth and vendor.dpd and vendor.unity and vendor.fragmentation
    assert vendor.cisco_client and NattVersion.RFC3947 in vendor.natt_versions
    assert vendor.products == ("strongSwan", "KAME/racoon", "Microsoft (version 9)")
    assert vendor.unknown == (bytes.fromhex("0123456789abcdef0123456789abcdef"), b"\x01")
    text = vendor.describe()
    assert "strongSwan" in text and "unknown 0123456789abcdef" in text
    _no_drops(lab)


def test_gateway_vendor_ids_of_a_vpn3000_4_7(monkeypatch) -> None:
    monkeypatch.setattr(
        aggressive,
        "trailing_vids",
        lambda identity: [VendorIdPayload(vpn3000_vid(4, 7)), VendorIdPayload(VID_STRONGSWAN)],
    )
    lab = make_lab()
    add_client(lab)
    connect(lab)
    client, _ = _established(lab)
    assert client.peer_vendor.vpn3000 == (4, 7) and client.peer_vendor.products == ("strongSwan",)


def _chatty(original):
    """A gateway's REPLY with attributes nobody asked for and a NUL-terminated version."""

    def to_attributes(self, requested=None):
        attrs = tuple(
            Attribute(a.type, a.value + b"\0") if a.type == CfgAttr.APPLICATION_VERSION else a
            for a in original(self, requested)
        )
        return (
            *attrs,
            Attribute(CfgAttr.SUPPORTED_ATTRIBUTES, b"\x00\x01\x00\x02"),
            Attribute(0x7FF0, b"vendor private"),
            Attribute(CfgAttr.INTERNAL_IP4_SUBNET, bytes([10, 0, 0, 0, 255, 0, 0, 0])),
        )

    return to_attributes


def test_unknown_mode_config_attributes_are_ignored(monkeypatch) -> None:
    monkeypatch.setattr(ModeConfig, "to_attributes", _chatty(ModeConfig.to_attributes))
    lab = make_lab()
    add_client(lab)
    connect(lab)
    (got,) = lab.events_of("c1", ModeConfigReceived)
    assert got.config.address == IPv4Address("40.1.1.1")
    assert {a.type for a in got.config.unknown} == {14, 0x7FF0, 13}
    assert got.config.app_version and not got.config.app_version.endswith("\0")
    _established(lab)
    _no_drops(lab)
