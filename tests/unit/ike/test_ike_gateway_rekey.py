"""Quick mode started by either end (RFC 2409 5.5 does not reserve it to the phase-1
initiator): the gateway rekeys phase 2 on its own shorter lifetime, the client answers;
the client refuses a gateway quick mode for traffic it does not tunnel."""

from __future__ import annotations

from ipaddress import IPv4Network

from labctl.ike import (
    ChildSaDeleted,
    ChildSaEstablished,
    ExchangeFailed,
    PacketDropped,
    Phase2Proposal,
)
from labctl.ike.events import Collector
from labctl.ike.exchanges import quick_mode
from tests.unit.ike.builders import add_client, assert_keys_mirror, child_pairs, connect, make_lab


def _gateway_lab(*, responder_lifetime: bool, ipsec_lifetime: int = 60):
    lab = make_lab(
        ipsec_lifetime=ipsec_lifetime,
        initiate_rekeys=True,
        send_responder_lifetime=responder_lifetime,
        dpd_idle=None,
    )
    ini = add_client(lab, phase2=(Phase2Proposal(lifetime=28800),), dpd_idle=None)
    connect(lab)
    return lab, ini


def _pairs_by_spi(lab):
    """(client view, server view) of every child, matched by SPI (server events lead)."""
    client = {e.inbound_spi: e for e in lab.events_of("c1", ChildSaEstablished)}
    return [(client[s.outbound_spi], s) for s in lab.events_of("server", ChildSaEstablished)]


def test_the_gateway_rekeys_on_its_shorter_lifetime_and_the_client_answers() -> None:
    """strongSwan-like gateway: 60 s, no RESPONDER-LIFETIME; the client offered 28800 s and
    does not know: the gateway's quick mode renews the child before it ends."""
    lab, ini = _gateway_lab(responder_lifetime=False)
    ((first_c, first_s),) = child_pairs(lab, "c1")
    assert ini.children()[0].lifetime == 28800  # told nothing shorter
    assert first_s.lifetime_seconds == 60
    lab.run(50)  # gateway rekeys at 80 % (48 s)
    server = lab.events_of("server", ChildSaEstablished)
    client = lab.events_of("c1", ChildSaEstablished)
    assert len(server) == len(client) == 2
    assert server[1].rekey_of == first_s.inbound_spi  # the gateway started it: its own SPI
    assert client[1].rekey_of == first_c.inbound_spi  # the client saw it as a rekey too
    assert (client[0].started_by_peer, server[0].started_by_peer) == (False, True)
    assert (client[1].started_by_peer, server[1].started_by_peer) == (True, False)
    for c, s in _pairs_by_spi(lab):
        assert_keys_mirror(c, s)
    assert lab.responder.stats["child_rekeys_started"] == 1
    assert ini.stats["child_rekeys_started"] == 0 and ini.stats["child_rekeys_answered"] == 1
    lab.run(10)  # the gateway deletes the old pair after its grace; the client follows
    assert [d.reason for d in lab.events_of("server", ChildSaDeleted)] == ["rekeyed"]
    assert [d.reason for d in lab.events_of("c1", ChildSaDeleted)] == ["peer-delete"]
    assert [c.inbound_spi for c in ini.children()] == [client[1].inbound_spi]
    lab.run(300)  # and so on: one child at a time, nothing ever expires, nothing refused
    reasons = {d.reason for d in lab.events_of("c1", ChildSaDeleted)}
    reasons |= {d.reason for d in lab.events_of("server", ChildSaDeleted)}
    assert reasons == {"rekeyed", "peer-delete"}
    assert len(lab.events_of("server", ChildSaEstablished)) >= 7
    assert ini.stats["child_rekeys_started"] == 0
    assert not lab.events_of("c1", ExchangeFailed) and not lab.events_of("c1", PacketDropped)
    assert not lab.events_of("server", PacketDropped)


def test_with_responder_lifetime_the_gateway_still_leads() -> None:
    """Our concentrator tells its 60 s; both ends would rekey, the gateway earlier (80 %
    against the client's 90 %): one rekey each time, started by the gateway."""
    lab, ini = _gateway_lab(responder_lifetime=True)
    lab.run(200)
    assert ini.stats["child_rekeys_started"] == 0
    assert lab.responder.stats["child_rekeys_started"] >= 3
    assert len(ini.children()) == 1 and len(lab.responder.inbound_spis) == 1


def test_simultaneous_rekeys_by_both_ends_leave_working_pairs() -> None:
    """Both ends start a rekey of the same child at the same moment: two new pairs, each
    end deletes what it replaced, no failure, and the pairs left are keyed alike."""
    lab = make_lab(ipsec_lifetime=600, initiate_rekeys=True, dpd_idle=None)
    ini = add_client(lab, phase2=(Phase2Proposal(lifetime=600),), dpd_idle=None)
    connect(lab)
    sa = next(iter(lab.responder.sas.values()))
    (server_child,) = sa.children.values()
    (client_child,) = ini.children()
    out = Collector()
    quick_mode.rekey(lab.responder, out, sa, server_child, lab.now)
    lab.collect("server", lab.responder._finish(out))
    lab.collect("c1", ini.rekey_child(client_child.inbound_spi, lab.now))
    lab.run(30)
    assert ini.stats["child_rekeys_started"] == lab.responder.stats["child_rekeys_started"] == 1
    assert len(lab.events_of("server", ChildSaEstablished)) == 3
    assert not lab.events_of("c1", ExchangeFailed) and not lab.events_of("server", ExchangeFailed)
    assert not lab.events_of("c1", PacketDropped) and not lab.events_of("server", PacketDropped)
    live_client = {c.inbound_spi for c in ini.children()}
    live_server = {c.outbound_spi for c in sa.children.values()}
    assert live_client and live_client == live_server  # nothing one-sided
    assert server_child.inbound_spi not in sa.children  # the old pair is gone on both ends
    assert client_child.inbound_spi not in live_client
    for c, s in _pairs_by_spi(lab):
        assert_keys_mirror(c, s)


def test_the_client_refuses_a_gateway_quick_mode_for_traffic_it_does_not_tunnel() -> None:
    lab = make_lab(dpd_idle=None)
    add_client(lab, remote_networks=(IPv4Network("10.1.0.0/16"),), dpd_idle=None)
    connect(lab)
    sa = next(iter(lab.responder.sas.values()))
    (child,) = sa.children.values()
    out = Collector()
    # the gateway offers the client's address <-> a network the client never asked for
    quick_mode.offer(
        lab.responder,
        out,
        sa,
        IPv4Network("192.168.0.0/16"),
        child.remote_ts,
        lab.responder.policy.phase2,
        lab.now,
    )
    lab.collect("server", lab.responder._finish(out))
    lab.run(5)
    (failed,) = lab.events_of("c1", ExchangeFailed)
    assert failed.stage == "quick" and "192.168.0.0/16 is not one we tunnel to" in failed.reason
    (told,) = lab.events_of("server", ExchangeFailed)
    assert told.reason == "peer refused: INVALID_ID_INFORMATION" and told.notify == 18
    assert len(lab.events_of("c1", ChildSaEstablished)) == 1  # nothing installed
    assert not sa.quick and not sa.retransmits  # the gateway stopped retrying at once


def _late_rekey_lab(*, client_rekeys: bool):
    """Our concentrator as the seed's (initiate-rekeys off, 60 s announced) with
    vpn.rekey-late-clients: a late rekey (95 %) for a client that has not rekeyed."""
    lab = make_lab(ipsec_lifetime=60, late_rekey_margin=0.05, dpd_idle=None)
    ini = add_client(lab, auto_rekey=client_rekeys, dpd_idle=None)
    connect(lab)
    return lab, ini


def test_a_late_rekey_renews_the_child_of_a_client_that_does_not_rekey() -> None:
    """vpnc never rekeys phase 2 before the end of the lifetime (and the SA it makes after
    the gateway's Delete carries its old keys): the concentrator renews it at 57 s."""
    lab, ini = _late_rekey_lab(client_rekeys=False)
    sa = next(iter(lab.responder.sas.values()))
    (child,) = sa.children.values()
    lab.run(child.established + 56 - lab.now)  # (connect ran a few seconds)
    assert lab.responder.stats["child_rekeys_started"] == 0  # not at 80 %, not at 90 %
    lab.run(2)
    assert lab.responder.stats["child_rekeys_started"] == 1
    server = lab.events_of("server", ChildSaEstablished)
    assert len(server) == 2 and server[1].rekey_of == server[0].inbound_spi
    assert ini.stats["child_rekeys_answered"] == 1
    lab.run(120)  # and again for each child: every child that ends had a successor
    server = lab.events_of("server", ChildSaEstablished)
    assert len(server) >= 4 and lab.responder.stats["child_rekeys_started"] == len(server) - 1
    replaced = {e.rekey_of for e in server}
    assert all(d.inbound_spi in replaced for d in lab.events_of("server", ChildSaDeleted))
    assert len(sa.children) == 1
    for c, s in _pairs_by_spi(lab):
        assert_keys_mirror(c, s)


def test_a_late_rekey_leaves_a_client_that_rekeys_itself_alone() -> None:
    lab, ini = _late_rekey_lab(client_rekeys=True)
    lab.run(200)
    assert ini.stats["child_rekeys_started"] >= 3  # at 90 %: before the gateway's 95 %
    assert lab.responder.stats["child_rekeys_started"] == 0


def test_without_the_quirk_the_gateway_leaves_rekeys_to_the_client() -> None:
    lab = make_lab(ipsec_lifetime=60, dpd_idle=None)
    add_client(lab, auto_rekey=False, dpd_idle=None)
    connect(lab)
    lab.run(70)
    assert lab.responder.stats["child_rekeys_started"] == 0
