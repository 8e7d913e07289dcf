"""A LAN-to-LAN session with several network pairs (issue 11, found in review): each child
SA gets its own data-plane tunnel, with its route and its outbound SA, on both ends; a
deleted pair takes its tunnel along and a tunnel name is never reused; a reload removes the
routes of a LAN-to-LAN network no entry names any more.

The agents are built without their TUN and IKE sockets (``__new__``); the data plane is the
real one on a socketpair "TUN" and a UDP socket on 127.0.0.1 (nothing is sent), fed by a
real engine pair (tests.unit.ike.harness)."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network
from types import SimpleNamespace

import pytest

from labctl.agent import site as site_module
from labctl.agent.concentrator import ConcentratorAgent
from labctl.agent.control import ControlError
from labctl.agent.dataplane import Dataplane
from labctl.agent.esp_sockets import open_udp
from labctl.agent.eventlog import EventLog
from labctl.agent.ikereport import IkeReport
from labctl.agent.loop import EventLoop
from labctl.agent.records import ClientStatus
from labctl.agent.site import SiteAgent
from labctl.ike import ChildSaDeleted, ChildSaEstablished, Phase1Deleted
from tests.unit.agent.test_dataplane_local import FakeTun
from tests.unit.ike.test_ike_lan_to_lan import BRANCH_LAN, HQ_LAN, make_l2l_lab

BRANCH_LAN2 = IPv4Network("10.21.0.0/24")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def dataplane() -> Iterator[Dataplane]:
    loop = EventLoop(Clock())
    tun = FakeTun("vpn0", mtu=1400)
    plane = Dataplane(loop, tun, natt_socket=open_udp("127.0.0.1", 0))
    yield plane
    plane.close()
    tun.close()


def concentrator(lab, dataplane: Dataplane) -> ConcentratorAgent:
    agent = ConcentratorAgent.__new__(ConcentratorAgent)
    agent.settings = SimpleNamespace(nat_keepalive=20, lan_to_lan={})
    agent.loop = dataplane._loop
    agent.log = EventLog(io.StringIO())
    agent.report = IkeReport(agent.log)
    agent.keylog = agent.tcp = None
    agent.sessions = {}
    agent.next_session_id = 1
    agent.total_sessions = agent.peak_sessions = 0
    agent.engine = lab.responder
    agent.dataplane = dataplane
    return agent


def route_of(plane: Dataplane, address: str):
    return plane._routes.lookup(IPv4Address(address).packed)


def two_pair_lab():
    lab = make_l2l_lab(branch_lans=(BRANCH_LAN, BRANCH_LAN2))
    lab.start("branch")
    lab.run(5)
    children = lab.events_of("server", ChildSaEstablished)
    assert sorted(str(c.remote_ts) for c in children) == [str(BRANCH_LAN), str(BRANCH_LAN2)]
    return lab, children


class Feeder:
    """Hands an agent the engine events it has not seen yet."""

    def __init__(self, events: list, agent) -> None:
        self.events, self.agent, self.fed = events, agent, 0

    def __call__(self) -> None:
        for event in self.events[self.fed :]:
            self.agent._on_event(event)
        self.fed = len(self.events)


def assert_routes_follow_children(plane: Dataplane, children: list[ChildSaEstablished]) -> None:
    for child in children:
        tunnel = route_of(plane, str(child.remote_ts.network_address + 5))
        assert tunnel is not None, f"no route for {child.remote_ts}"
        assert tunnel.outbound.spi == child.outbound_spi  # not the other pair's SA
        assert child.inbound_spi in tunnel.inbound


def test_each_network_pair_has_its_own_tunnel_route_and_outbound_sa(dataplane) -> None:
    lab, children = two_pair_lab()
    agent = concentrator(lab, dataplane)
    feed = Feeder(lab.server_events, agent)
    feed()
    assert len(dataplane.tunnels()) == 2
    assert_routes_follow_children(dataplane, children)
    (record,) = agent.lan_to_lan_records()
    assert sorted(s.remote_address for s in record.ipsec) == [
        "10.20.0.0/255.255.255.0",
        "10.21.0.0/255.255.255.0",
    ]

    lab.run(600)  # past the children's 90 % mark: each pair is rekeyed in its own tunnel
    feed()
    rekeyed = [c for c in lab.events_of("server", ChildSaEstablished) if c.rekey_of]
    assert sorted(str(c.remote_ts) for c in rekeyed) == [str(BRANCH_LAN), str(BRANCH_LAN2)]
    assert len(dataplane.tunnels()) == 2
    assert_routes_follow_children(dataplane, rekeyed)


def test_a_deleted_pair_takes_its_tunnel_and_route_along(dataplane) -> None:
    lab, children = two_pair_lab()
    agent = concentrator(lab, dataplane)
    Feeder(lab.server_events, agent)()
    first, second = children
    agent._on_event(
        ChildSaDeleted(first.handle, first.inbound_spi, first.outbound_spi, "peer-delete")
    )
    assert route_of(dataplane, "10.20.0.5") is None
    assert_routes_follow_children(dataplane, [second])
    # The pair comes back (a new quick mode): a new tunnel, under a name not used before.
    names = {t.name for t in dataplane.tunnels()}
    again = dataclasses.replace(first, inbound_spi=0x1234, outbound_spi=0x5678)
    agent._on_event(again)
    assert_routes_follow_children(dataplane, [again, second])
    assert len({t.name for t in dataplane.tunnels()} - names) == 1


def test_logout_of_a_lan_to_lan_connection_deletes_it_at_the_peer(dataplane) -> None:
    """Administer Sessions' Logout on a LAN-to-LAN row: the session ends here (tunnels,
    routes, the log line) and the branch hears the Delete."""
    lab, children = two_pair_lab()
    agent = concentrator(lab, dataplane)
    agent.driver = SimpleNamespace(apply=lambda out: lab.collect("server", out))
    Feeder(lab.server_events, agent)()
    with pytest.raises(ControlError, match="no session of user 'branch'"):
        agent.logout("branch")  # a LAN-to-LAN name is not a remote-access user
    with pytest.raises(ControlError, match="no LAN-to-LAN session of connection 'hq'"):
        agent.logout_lan_to_lan("hq")
    assert len(dataplane.tunnels()) == 2

    assert agent.logout_lan_to_lan("branch") == 1
    assert dataplane.tunnels() == [] and agent.lan_to_lan_records() == []
    assert route_of(dataplane, "10.20.0.5") is None and route_of(dataplane, "10.21.0.5") is None
    assert "Reason: Administrator logout" in agent.log.stream.getvalue()
    lab.run(1)
    gone = lab.events_of("branch", Phase1Deleted)
    assert [e.reason for e in gone] == ["peer-delete"]
    deleted = lab.events_of("branch", ChildSaDeleted)
    assert sorted(e.outbound_spi for e in deleted) == sorted(c.inbound_spi for c in children)


def site(lab, dataplane: Dataplane, monkeypatch: pytest.MonkeyPatch) -> SiteAgent:
    monkeypatch.setattr(site_module, "run_ip_batch", lambda commands: None)
    agent = SiteAgent.__new__(SiteAgent)
    agent.settings = SimpleNamespace(nat_keepalive=20, lan_address=None)
    agent.loop = dataplane._loop
    agent.log = EventLog(io.StringIO())
    agent.keylog = agent.stream = None
    agent.tun = SimpleNamespace(name="vpn0")
    agent.status = ClientStatus("connecting", "171.69.89.78", "LAN-to-LAN", "branch")
    agent.tunnels, agent.routes = {}, []
    agent.tunnel_serial = iter(range(100))
    agent.failures = 0
    agent.state_watchers = []
    agent.dataplane = dataplane
    agent.driver = SimpleNamespace(engine=lab.clients["branch"].engine)
    return agent


def test_the_site_never_reuses_a_tunnel_name(dataplane, monkeypatch) -> None:
    """vpn{len(tunnels)} named the third tunnel after a delete like the second one: the
    data plane refused it ('already exists') and the pair stayed without a tunnel."""
    lab, _ = two_pair_lab()
    agent = site(lab, dataplane, monkeypatch)
    children = lab.events_of("branch", ChildSaEstablished)
    for child in children:
        agent._on_event(child)
    assert sorted(agent.routes) == [str(HQ_LAN)]
    owner = route_of(dataplane, "192.168.2.5")  # both pairs share HQ's route, by source
    for child in children:
        source = int(child.local_ts.network_address + 5)
        assert owner.pick(source).outbound.spi == child.outbound_spi
    first = children[0]
    agent._on_event(
        ChildSaDeleted(first.handle, first.inbound_spi, first.outbound_spi, "peer-delete")
    )
    assert len(dataplane.tunnels()) == 1
    agent._on_event(dataclasses.replace(first, inbound_spi=0x1234, outbound_spi=0x5678))
    assert len(dataplane.tunnels()) == 2
    assert 0x1234 in {spi for t in dataplane.tunnels() for spi in t.inbound}


def test_reload_removes_the_routes_of_a_removed_entry() -> None:
    routes: dict[str, str | None] = {}
    tun = SimpleNamespace(
        add_route=lambda network, src=None: routes.__setitem__(network, src),
        delete_route=lambda network: routes.pop(network),
    )
    agent = ConcentratorAgent.__new__(ConcentratorAgent)
    agent.tun, agent.l2l_routes = tun, set()

    def settings(*networks: list[str]) -> SimpleNamespace:
        entries = {
            f"e{i}": SimpleNamespace(remote_networks=[IPv4Network(n) for n in nets])
            for i, nets in enumerate(networks)
        }
        return SimpleNamespace(private_address="192.168.2.1", groups={}, lan_to_lan=entries)

    agent._route_lan_to_lan(settings(["10.20.0.0/24", "10.21.0.0/24"], ["10.30.0.0/24"]))
    assert sorted(routes) == ["10.20.0.0/24", "10.21.0.0/24", "10.30.0.0/24"]
    agent._route_lan_to_lan(settings(["10.20.0.0/24"]))
    assert sorted(routes) == ["10.20.0.0/24"]
    assert routes["10.20.0.0/24"] == "192.168.2.1"
