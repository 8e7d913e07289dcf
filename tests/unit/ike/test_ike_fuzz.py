"""Property tests on the packet entry points: random and mutated datagrams never raise, are
counted, and never change an established SA (bounded example counts keep this fast)."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl.ike import (
    Attribute,
    AttributePayload,
    HashPayload,
    IdPayload,
    IkeDecodeError,
    Message,
    NatDPayload,
    NoncePayload,
    NotifyPayload,
    PacketDropped,
    Proposal,
    SaPayload,
    Transform,
    VendorIdPayload,
    decode_chain,
    decode_message,
    encode_chain,
)
from labctl.ike.codec import decode_attributes, encode_attributes
from labctl.ike.constants import CfgAttr, PayloadType
from tests.unit.ike.builders import add_client, connect, make_lab

# IKE_FUZZ_EXAMPLES=5000 for a deeper local run; the default keeps the suite fast.
EXAMPLES = int(os.environ.get("IKE_FUZZ_EXAMPLES", "250"))
FAST = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _fingerprint(engine) -> tuple:
    """Everything that matters about the ESTABLISHED SAs (fuzzed first messages may, like any
    first message, open new half-open SAs: those are not established ones changing)."""
    out = []
    for key, sa in sorted(engine.sas.items()):
        if not sa.established:
            continue
        children = tuple(
            sorted(
                (c.inbound_spi, c.outbound_spi, c.enc_key_in, c.enc_key_out, c.expires_at)
                for c in sa.children.values()
            )
        )
        out.append(
            (
                key,
                sa.state,
                sa.remote,
                sa.local,
                sa.keys.enc_key if sa.keys else None,
                sa.p1_last,
                dict(sa.ivs),
                children,
                sa.mode_config,
                sa.xauth,
                sa.user,
                sa.expires_at,
                tuple(sorted(sa.quick)),
                sa.replaced_by,
            )
        )
    spis = tuple(sorted(spi for spi, sa in engine.inbound_spis.items() if sa.established))
    return tuple(out), spis


@pytest.fixture(scope="module")
def session():
    """One established seed-like session and every datagram that built it."""
    lab = make_lab(dpd_idle=None)
    add_client(lab, dpd_idle=None)
    connect(lab)
    assert lab.responder.established()
    client_packets = [f for f in lab.capture if f.sender == "c1"]
    server_packets = [f for f in lab.capture if f.sender == "server"]
    return lab, client_packets, server_packets


def _mutate(data: bytes, draw) -> bytes:
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "extend", "header"]))
        if kind == "flip" and buf:
            pos = draw(st.integers(0, len(buf) - 1))
            buf[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and buf:
            pos = draw(st.integers(0, len(buf) - 1))
            buf[pos] = draw(st.integers(0, 255))
        elif kind == "cut":
            buf = buf[: draw(st.integers(0, len(buf)))]
        elif kind == "extend":
            buf += draw(st.binary(min_size=1, max_size=64))
        elif kind == "header" and len(buf) >= 28:
            field = draw(st.sampled_from([16, 17, 18, 19, 20, 24]))
            if field in (20, 24):
                struct.pack_into("!I", buf, field, draw(st.integers(0, 2**32 - 1)))
            else:
                buf[field] = draw(st.integers(0, 255))
    return bytes(buf)


@FAST
@given(st.data())
def test_mutated_client_packets_never_change_the_gateway(session, data) -> None:
    lab, client_packets, _ = session
    responder = lab.responder
    before = _fingerprint(responder)
    f = data.draw(st.sampled_from(client_packets))
    mutated = _mutate(f.data, data.draw)
    remote = ("171.69.89.78", f.src[1])
    out = responder.receive(mutated, remote, f.dst, lab.now)  # must not raise
    assert _fingerprint(responder) == before
    if mutated not in {p.data for p in client_packets} and mutated[8:16] != bytes(8):
        # anything but an exact retransmission (or a first message, which may legitimately
        # open a new half-open SA) is refused and counted
        assert out.of_type(PacketDropped) and not out.datagrams


@FAST
@given(st.data())
def test_forged_packets_with_live_cookies(session, data) -> None:
    """Valid-looking headers with the live SA's cookies reach decryption and hashing."""
    lab, _, _ = session
    responder = lab.responder
    key = responder.established()[0].key
    before = _fingerprint(responder)
    exchange = data.draw(st.sampled_from([1, 2, 4, 5, 6, 32, 33, 99]))
    flags = data.draw(st.sampled_from([0, 1, 3, 7]))
    body = data.draw(st.binary(max_size=200))
    msgid = data.draw(st.integers(0, 2**32 - 1))
    nxt = data.draw(st.sampled_from([0, 1, 5, 8, 11, 12, 14, 20, 130, 200]))
    header = (
        key[0] + key[1] + struct.pack("!BBBBII", nxt, 0x10, exchange, flags, msgid, 28 + len(body))
    )
    out = responder.receive(header + body, ("171.69.89.78", 4500), ("172.16.172.50", 4500), lab.now)
    assert out.of_type(PacketDropped)
    assert _fingerprint(responder) == before


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=400), st.integers(1, 65535))
def test_random_datagrams_on_a_fresh_gateway(data: bytes, port: int) -> None:
    lab = make_lab()
    out = lab.responder.receive(data, ("198.51.100.7", port), ("172.16.172.50", 500), 0.0)
    assert out.of_type(PacketDropped)
    assert lab.responder.stats["dropped"] == 1
    assert not lab.responder.established()


@FAST
@given(st.data())
def test_mutated_gateway_packets_never_change_the_client(session, data) -> None:
    lab, _, server_packets = session
    ini = lab.clients["c1"].engine
    before = _fingerprint(ini)
    f = data.draw(st.sampled_from(server_packets))
    mutated = _mutate(f.data, data.draw)
    ini.receive(mutated, f.src, ("10.10.10.2", f.dst[1]), lab.now)  # must not raise
    assert _fingerprint(ini) == before


def test_fuzzing_left_the_session_working(session) -> None:
    """After all that, the real session still answers a DPD probe."""
    lab, _, _ = session
    ini = lab.clients["c1"].engine
    lab.queue.clear()
    lab.collect("c1", ini.dpd(lab.now))
    lab.run(1)
    assert ini.current.dpd_pending is None
    assert lab.responder.stats["malformed"] + lab.responder.stats["rejected"] > 100


# ---------------------------------------------------------------------------------------------
# Liberal decoding stays honest (issue 15): whatever the decoder accepts -- canonical
# messages, the tolerated variants (zero padding after the last attribute, attributes in any
# order, numbers of any width), mutated real packets -- re-encodes to a message that decodes
# to the same thing; whatever it refuses raises IkeDecodeError and nothing else.

_ATTRS = st.one_of(
    st.builds(Attribute, st.integers(0, 0x7FFF), st.integers(0, 0xFFFF)),
    st.builds(Attribute, st.integers(0, 0x7FFF), st.binary(max_size=24)),
)
_ATTR_LISTS = st.lists(_ATTRS, max_size=6).map(tuple)
_PADS = st.integers(0, 3)  # zero bytes a peer may put after the last attribute


@dataclass(frozen=True)
class _Padded:
    """A payload plus the zero padding its sender puts after its last attribute(s)."""

    payload: object
    pad: int


def _transforms():
    return st.builds(
        lambda n, tid, attrs, pad: _Padded(Transform(n, tid, attrs), pad),
        st.integers(0, 255),
        st.integers(0, 255),
        _ATTR_LISTS,
        _PADS,
    )


def _sa_payloads():
    proposals = st.tuples(
        st.integers(0, 255),
        st.integers(0, 255),
        st.binary(max_size=8),
        st.lists(_transforms(), max_size=3),
    )

    def build(props, doi: int, situation: int) -> _Padded:
        sa = SaPayload(
            tuple(
                Proposal(n, proto, spi, tuple(t.payload for t in ts)) for n, proto, spi, ts in props
            ),
            doi,
            situation,
        )
        return _Padded((sa, tuple(tuple(t.pad for t in ts) for *_, ts in props)), 0)

    u32 = st.integers(0, 2**32 - 1)
    return st.builds(build, st.lists(proposals, max_size=3), u32, u32)


def _payloads():
    return st.one_of(
        _sa_payloads(),
        st.builds(
            lambda t, i, attrs, pad: _Padded(AttributePayload(t, i, attrs), pad),
            st.integers(0, 255),
            st.integers(0, 0xFFFF),
            _ATTR_LISTS,
            _PADS,
        ),
        st.builds(
            lambda t, proto, spi, attrs, pad: _Padded(
                NotifyPayload(t, proto, spi, encode_attributes(attrs) + bytes(pad)), 0
            ),
            st.integers(0, 0xFFFF),
            st.integers(0, 255),
            st.binary(max_size=16),
            _ATTR_LISTS,
            _PADS,
        ),
        st.builds(lambda d: _Padded(VendorIdPayload(d), 0), st.binary(max_size=20)),
        st.builds(lambda d: _Padded(NoncePayload(d), 0), st.binary(max_size=32)),
        st.builds(
            lambda t, d: _Padded(IdPayload(t, d, 17, 500), 0),
            st.integers(0, 255),
            st.binary(max_size=12),
        ),
        st.builds(lambda d: _Padded(HashPayload(d), 0), st.binary(max_size=20)),
        st.builds(lambda d: _Padded(NatDPayload(d, draft=False), 0), st.binary(max_size=20)),
    )


def _encode_padded(item: _Padded) -> tuple[int, bytes]:
    """(payload type, body) as the variant's sender writes it."""
    payload = item.payload
    if isinstance(payload, tuple):  # an SA with per-transform padding
        sa, pads = payload
        body = struct.pack("!II", sa.doi, sa.situation)
        for i, (prop, tpads) in enumerate(zip(sa.proposals, pads, strict=True)):
            tbytes = b""
            for j, (t, pad) in enumerate(zip(prop.transforms, tpads, strict=True)):
                tbody = struct.pack("!BBH", t.number, t.transform_id, 0)
                tbody += encode_attributes(t.attributes) + bytes(pad)
                nxt = 0 if j == len(prop.transforms) - 1 else PayloadType.TRANSFORM
                tbytes += struct.pack("!BBH", nxt, 0, 4 + len(tbody)) + tbody
            pbody = struct.pack("!BBBB", prop.number, prop.protocol, len(prop.spi), len(pads[i]))
            pbody += prop.spi + tbytes
            nxt = 0 if i == len(sa.proposals) - 1 else PayloadType.PROPOSAL
            body += struct.pack("!BBH", nxt, 0, 4 + len(pbody)) + pbody
        return PayloadType.SA, body
    return payload.payload_type, payload.encode_body() + bytes(item.pad)


def _canonical(item: _Padded):
    return item.payload[0] if isinstance(item.payload, tuple) else item.payload


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(_payloads(), min_size=1, max_size=5), st.binary(min_size=8, max_size=8))
def test_tolerated_variants_reencode_to_the_same_meaning(items, icookie: bytes) -> None:
    icookie = icookie if any(icookie) else b"\x01" * 8
    chain = b""
    encoded = [_encode_padded(i) for i in items]
    for k, (_, body) in enumerate(encoded):
        nxt = encoded[k + 1][0] if k + 1 < len(encoded) else 0
        chain += struct.pack("!BBH", nxt, 0, 4 + len(body)) + body
    header = (
        icookie + bytes(8) + struct.pack("!BBBBII", encoded[0][0], 0x10, 4, 0, 0, 28 + len(chain))
    )
    first = decode_message(header + chain)
    assert first.payloads == tuple(_canonical(i) for i in items)
    assert decode_message(first.encode()) == first  # decode(encode(decode(x))) == decode(x)


@FAST
@given(st.data())
def test_every_accepted_mutation_reencodes_and_refusals_are_decode_errors(session, data) -> None:
    _, client_packets, server_packets = session
    f = data.draw(st.sampled_from(client_packets + server_packets))
    mutated = _mutate(f.data, data.draw)
    try:
        message = decode_message(mutated)
    except IkeDecodeError:
        return
    if isinstance(message, Message):
        assert decode_message(message.encode()) == message


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([0, 1, 5, 8, 10, 11, 12, 13, 14, 20, 99]))
def test_random_chains_decode_equivalently_or_raise_decode_errors(data: bytes, first: int) -> None:
    try:
        chain = decode_chain(first, data, allow_trailing=True)
    except IkeDecodeError:
        return
    again = decode_chain(first, encode_chain(chain.payloads))
    assert again.payloads == chain.payloads


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=64))
def test_random_attribute_areas_decode_equivalently_or_raise_decode_errors(data: bytes) -> None:
    try:
        attrs = decode_attributes(data)
    except IkeDecodeError:
        return
    assert decode_attributes(encode_attributes(attrs)) == attrs


# ---------------------------------------------------------------------------------------------
# Behind the encryption: a keyed peer's odd contents (correct HASH, random attributes) are
# dropped or answered, never raised. Own labs: these messages may legitimately end the SA.


_CFG_TYPES = st.one_of(st.sampled_from([int(a) for a in CfgAttr]), st.integers(0, 0x7FFF))
_CFG_ATTRS = st.lists(
    st.one_of(
        st.builds(Attribute, _CFG_TYPES, st.integers(0, 0xFFFF)),
        st.builds(Attribute, _CFG_TYPES, st.binary(max_size=24)),
    ),
    max_size=6,
).map(tuple)


@pytest.fixture(scope="module")
def keyed_lab():
    lab = make_lab(dpd_idle=None)
    add_client(lab, dpd_idle=None)
    connect(lab)
    return lab


@FAST
@given(
    st.sampled_from([6, 32, 5]),
    st.sampled_from([1, 2, 3, 4, 0, 200]),
    st.integers(0, 0xFFFF),
    _CFG_ATTRS,
    st.integers(1, 2**32 - 1),
)
def test_keyed_client_contents_never_raise_in_the_gateway(
    keyed_lab, exchange: int, cfg_type: int, ident: int, attrs, mid: int
) -> None:
    lab = keyed_lab
    sa = lab.clients["c1"].engine.current
    if sa is None:
        return
    data = sa.protected(exchange, mid, [AttributePayload(cfg_type, ident, attrs)])
    remote = lab.responder.established()[0].remote
    out = lab.responder.receive(data, remote, ("172.16.172.50", 4500), lab.now)  # no raise
    assert isinstance(out.events, tuple)


@FAST
@given(
    st.sampled_from([6, 32, 5]),
    st.sampled_from([1, 2, 3, 4, 0, 200]),
    st.integers(0, 0xFFFF),
    _CFG_ATTRS,
    st.integers(1, 2**32 - 1),
)
def test_keyed_gateway_contents_never_raise_in_the_client(
    exchange: int, cfg_type: int, ident: int, attrs, mid: int
) -> None:
    lab = make_lab(dpd_idle=None)
    ini = add_client(lab, dpd_idle=None)
    connect(lab)
    (sa,) = lab.responder.established()
    data = sa.protected(exchange, mid, [AttributePayload(cfg_type, ident, attrs)])
    ini.receive(data, ("172.16.172.50", 4500), ("10.10.10.2", 4500), lab.now)  # no raise
