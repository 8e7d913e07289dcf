"""What the engine reports when things go wrong (issues 8 and 15): drops with category,
exchange and payload; stale messages of SAs just removed; requests stuck without an answer;
an empty address pool refused like a VPN 3000 does (no address, IKE SA deleted)."""

from __future__ import annotations

import struct

from labctl.ike import (
    AddressPool,
    AttributePayload,
    ChildSaEstablished,
    ExchangeFailed,
    ModeConfigApplied,
    ModeConfigReceived,
    PacketDropped,
    Phase1Deleted,
    Refused,
    RequestRetransmitted,
    SimpleHooks,
    XauthResult,
    decode_header,
)
from labctl.ike.constants import CfgAttr, CfgType, ExchangeType
from tests.unit.ike.builders import USERS, add_client, connect, make_lab

# ---------------------------------------------------------------------------------------------
# Pool exhausted (issue 8): a /32 pool and two clients


def test_empty_pool_refuses_mode_config_and_deletes_the_half_tunnel() -> None:
    lab = make_lab(pool=("40.1.1.1", "40.1.1.1"))
    add_client(lab, "c1", "10.10.10.2", "vpnclient1")
    second = add_client(lab, "c2", "10.10.10.3", "vpnclient2")
    connect(lab, "c1")
    connect(lab, "c2")
    # the first client is in, the second authenticated (XAUTH) but got no address
    assert lab.events_of("c1", ChildSaEstablished)
    assert [r.success for r in lab.events_of("c2", XauthResult)] == [True]
    assert not lab.events_of("c2", ChildSaEstablished)
    assert not lab.events_of("c2", ModeConfigReceived)
    (failed,) = lab.events_of("c2", ExchangeFailed)
    assert failed.stage == "modecfg"
    assert failed.reason.startswith("no address available from the concentrator's pool")
    assert second.current is None and not second.sas  # nothing half-open on the client
    # the concentrator: refused, logged, the IKE SA deleted, nothing else kept
    server_failures = [f for f in lab.events_of("server", ExchangeFailed) if f.stage == "modecfg"]
    assert [f.reason for f in server_failures] == [
        "no address available in the pool of group ciscovpn"
    ]
    gone = [d for d in lab.events_of("server", Phase1Deleted) if d.handle == failed.handle]
    assert len(gone) == 1
    assert len(lab.responder.sas) == 1 and lab.responder.established()[0].user == "vpnclient1"
    assert len(lab.events_of("server", ChildSaEstablished)) == 1  # c1's only
    assert [a.user for a in lab.events_of("server", ModeConfigApplied)] == ["vpnclient1"]
    assert list(lab.hooks.pool.in_use.values()) == [
        lab.responder.established()[0].mode_config.address
    ]
    # on the wire: the REPLY (no address), then the Delete, to the second client
    to_c2 = [
        decode_header(f.data).exchange
        for f in lab.capture
        if f.sender == "server" and f.data[:8] == failed.handle.icookie
    ]
    assert to_c2[-2:] == [ExchangeType.TRANSACTION, ExchangeType.INFORMATIONAL]
    assert lab.responder.stats["modecfg_no_address"] == 1
    assert second.stats["modecfg_no_address"] == 1
    # the two Deletes crossing each other are stale, not hostile
    for who in ("server", "c2"):
        assert all(d.stale for d in lab.events_of(who, PacketDropped)), who


def test_a_refused_session_is_deleted_with_the_hooks_reason() -> None:
    """A hook may refuse a session for another reason than the pool (a session limit): the
    client sees what an empty pool looks like (a REPLY without an address), the concentrator
    reports the hook's reason and counts it apart from empty pools."""

    class AtMostOne(SimpleHooks):
        def assign_address(self, ctx):
            if self.pool.in_use:
                return Refused("Concurrent Sessions Limit (1) reached")
            return super().assign_address(ctx)

    lab = make_lab(hooks=AtMostOne(USERS, AddressPool("40.1.1.1", "40.1.1.9")))
    add_client(lab, "c1", "10.10.10.2", "vpnclient1")
    second = add_client(lab, "c2", "10.10.10.3", "vpnclient2")
    connect(lab, "c1")
    connect(lab, "c2")
    assert lab.events_of("c1", ChildSaEstablished) and not lab.events_of("c2", ChildSaEstablished)
    (failed,) = lab.events_of("c2", ExchangeFailed)
    assert failed.stage == "modecfg" and second.current is None
    server_failures = [f for f in lab.events_of("server", ExchangeFailed) if f.stage == "modecfg"]
    assert [f.reason for f in server_failures] == ["Concurrent Sessions Limit (1) reached"]
    assert [d.reason for d in lab.events_of("server", Phase1Deleted)] == [
        "Concurrent Sessions Limit (1) reached"
    ]
    assert lab.responder.stats["modecfg_refused"] == 1
    assert lab.responder.stats["modecfg_no_address"] == 0
    assert len(lab.hooks.pool.in_use) == 1  # the refused session took no address


def test_empty_pool_with_pushed_mode_config() -> None:
    lab = make_lab(pool=("40.1.1.1", "40.1.1.1"), modecfg_push=True)
    add_client(lab, "c1", "10.10.10.2", "vpnclient1", modecfg="push")
    add_client(lab, "c2", "10.10.10.3", "vpnclient2", modecfg="push")
    connect(lab, "c1")
    connect(lab, "c2")
    assert lab.events_of("c1", ChildSaEstablished) and not lab.events_of("c2", ChildSaEstablished)
    assert any(f.stage == "modecfg" for f in lab.events_of("server", ExchangeFailed))
    assert len(lab.responder.sas) == 1


# ---------------------------------------------------------------------------------------------
# Drops name exchange, payload and category


def _garbage_reply(self: AttributePayload) -> bytes:
    body = struct.pack("!BBH", self.cfg_type, 0, self.identifier)
    body += b"".join(a.encode() for a in self.attributes)
    if self.cfg_type == CfgType.REPLY and self.attr(CfgAttr.INTERNAL_IP4_ADDRESS):
        body += b"\x00\x07"  # not zero padding: truly malformed
    return body


def test_malformed_mode_config_reply_is_dropped_naming_exchange_and_payload(monkeypatch) -> None:
    monkeypatch.setattr(AttributePayload, "encode_body", _garbage_reply)
    lab = make_lab()
    add_client(lab)
    connect(lab, duration=3)
    drops = lab.events_of("c1", PacketDropped)
    assert drops, "the reply was dropped"
    drop = drops[0]
    assert (drop.category, drop.exchange, drop.payload) == ("malformed", "transaction", "ATTR")
    assert "not zero padding" in drop.reason and drop.peer == ("172.16.172.50", 4500)
    assert lab.clients["c1"].engine.stats["dropped_malformed"] == len(drops)


def test_garbled_ciphertext_is_undecryptable() -> None:
    lab = make_lab()
    add_client(lab)
    connect(lab)
    sample = next(
        f
        for f in lab.capture
        if f.sender == "c1" and decode_header(f.data).exchange == ExchangeType.TRANSACTION
    )
    categories = []
    for i in range(20):
        garbled = bytearray(sample.data)
        garbled[28 + (i % 8)] ^= 0x5A  # first ciphertext block: CBC garbles the first block
        out = lab.responder.receive(bytes(garbled), ("171.69.89.78", 4500), sample.dst, lab.now)
        (drop,) = out.of_type(PacketDropped)
        categories.append(drop.category)
    assert categories.count("undecryptable") >= 18, categories


def test_unknown_cookies_are_unexpected_and_counted() -> None:
    lab = make_lab()
    header = b"\x11" * 8 + b"\x22" * 8 + struct.pack("!BBBBII", 8, 0x10, 5, 1, 7, 28 + 16)
    out = lab.responder.receive(
        header + bytes(16), ("198.51.100.9", 500), ("172.16.172.50", 500), 0
    )
    (drop,) = out.of_type(PacketDropped)
    assert (drop.category, drop.exchange, drop.stale) == ("unexpected", "informational", False)
    assert lab.responder.stats["dropped_unexpected"] == 1


def test_half_open_limit_drops_are_refused() -> None:
    lab = make_lab(max_half_open_per_peer_ip=2)
    for name, ip in (("a", "10.10.10.2"), ("b", "10.10.10.3"), ("c", "10.10.10.4")):
        add_client(lab, name, ip)
        lab.start(name)
    lab.run(0.5)
    refused = [d for d in lab.events_of("server", PacketDropped) if d.category == "refused"]
    assert len(refused) >= 1 and "too many half-open" in refused[0].reason
    assert refused[0].exchange == "aggressive mode"


# ---------------------------------------------------------------------------------------------
# A stuck exchange says what it waits for


def test_unanswered_mode_config_request_is_reported_then_fails() -> None:
    lab = make_lab()
    ini = add_client(lab)
    lab.drop = lambda f: f.sender == "server" and bool(lab.events_of("c1", XauthResult))
    connect(lab, duration=7)
    waiting = ini.waiting()
    assert len(waiting) == 1 and waiting[0].stage == "modecfg"
    assert waiting[0].describe(lab.now) == "waiting for Mode-Config reply (2 retransmits, 7 s)"
    retransmitted = lab.events_of("c1", RequestRetransmitted)
    assert [(r.waiting_for, r.retransmits) for r in retransmitted] == [
        ("Mode-Config reply", 1),
        ("Mode-Config reply", 2),
    ]
    assert round(retransmitted[-1].waited) == 6
    lab.run(120)
    (failed,) = lab.events_of("c1", ExchangeFailed)
    assert failed.stage == "modecfg"
    assert failed.reason == "no Mode-Config reply after 5 retransmits (94 s)"
    assert ini.waiting() == []


def test_gateway_reports_an_unanswered_xauth_request() -> None:
    lab = make_lab()
    add_client(lab)
    # the client vanishes right after aggressive mode message 3
    lab.drop = lambda f: (
        f.sender == "c1" and decode_header(f.data).exchange != ExchangeType.AGGRESSIVE
    )
    connect(lab, duration=3)
    waits = lab.events_of("server", RequestRetransmitted)
    assert waits and waits[0].waiting_for == "XAUTH reply" and waits[0].stage == "xauth"
    assert lab.responder.waiting()[0].waiting_for == "XAUTH reply"


# ---------------------------------------------------------------------------------------------
# A keyed gateway's odd numbers are malformed messages, never exceptions


def test_an_empty_xauth_type_from_the_gateway_is_dropped_not_raised(monkeypatch) -> None:
    from labctl.ike import Attribute
    from labctl.ike.exchanges import transaction, xauth
    from labctl.ike.states import TransactionKind

    def xauth_request(engine, out, sa, now):
        attrs = [
            Attribute(CfgAttr.XAUTH_TYPE, b""),
            Attribute(CfgAttr.XAUTH_USER_NAME, b""),
            Attribute(CfgAttr.XAUTH_USER_PASSWORD, b""),
        ]
        kind = TransactionKind.XAUTH
        return transaction.start(engine, out, sa, CfgType.REQUEST, attrs, kind, now)

    monkeypatch.setattr(xauth, "send_request", xauth_request)
    lab = make_lab()
    add_client(lab)
    connect(lab, duration=3)  # raised ValueError out of Initiator.receive before
    drops = lab.events_of("c1", PacketDropped)
    assert drops and drops[0].category == "malformed" and drops[0].exchange == "transaction"
    assert "empty value is not a number" in drops[0].reason


def test_a_mode_config_port_out_of_range_is_malformed() -> None:
    import pytest

    from labctl.ike import Attribute, IkeProtocolError, ModeConfig

    with pytest.raises(IkeProtocolError, match="port 65536"):
        ModeConfig.from_attributes(
            (Attribute(CfgAttr.UNITY_NATT_PORT, (65536).to_bytes(3, "big")),)
        )
