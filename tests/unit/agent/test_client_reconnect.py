"""The client agent after its concentrator went away: exactly one reconnect is scheduled.

DPD gives the agent PeerDead, and the engine then deletes the dead SA (Phase1Deleted,
reason "dpd"). Handling both as failures used to schedule two reconnects (and count two).
The agent is built without its TUN and sockets: only the connection state machine runs.
"""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest

from labctl.agent import client as client_module
from labctl.agent.client import ClientAgent
from labctl.agent.eventlog import EventLog
from labctl.agent.loop import EventLoop
from labctl.agent.records import ClientStatus
from labctl.ike.events import PeerDead, Phase1Deleted, SaHandle


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def agent(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(client_module, "run_ip_batch", lambda *args, **kwargs: None)
    clock = _Clock()
    agent = ClientAgent.__new__(ClientAgent)
    agent.settings = SimpleNamespace(auto_connect=True)
    agent.loop = EventLoop(clock)
    agent.log = EventLog(io.StringIO(), "info")
    agent.tun = SimpleNamespace(name="vpn0", delete_route=lambda network: None)
    agent.dataplane = SimpleNamespace(remove_tunnel=lambda name: None)
    agent.status = ClientStatus("connected", "172.16.172.50", "ciscovpn", "vpnclient1")
    agent.tunnels, agent.routes, agent.host_route = {}, [], None
    agent.connector = agent.stream = None  # IPsec over TCP: no connection in this test
    agent.want_connected, agent.reconnect_timer, agent.failures = True, None, 0
    agent.state_watchers = []
    connects: list[float] = []
    agent.connect = lambda: connects.append(clock.now)  # the real one opens sockets
    agent.connects, agent.clock = connects, clock
    return agent


def test_dpd_death_then_the_sa_delete_schedule_one_reconnect(agent) -> None:
    handle = SaHandle(b"\x01" * 8, b"\x02" * 8)
    agent._on_PeerDead(PeerDead(handle, ("172.16.172.50", 4500), 2))
    agent._on_Phase1Deleted(Phase1Deleted(handle, "dpd"))
    assert agent.status.state == "failed"
    assert "DPD" in agent.status.last_error
    live = [t for _, _, t in agent.loop._timers if not t.cancelled]
    assert len(live) == 1, "one pending reconnect, not two"
    assert live[0].when == pytest.approx(102.0)  # the first back-off step
    assert agent.failures == 1


def test_a_concentrator_delete_while_connected_is_a_failure(agent) -> None:
    handle = SaHandle(b"\x01" * 8, b"\x02" * 8)
    agent._on_Phase1Deleted(Phase1Deleted(handle, "peer-delete"))
    assert agent.status.state == "failed"
    assert len([t for _, _, t in agent.loop._timers if not t.cancelled]) == 1


def test_a_rekey_replacing_the_sa_is_not_a_failure(agent) -> None:
    old, new = SaHandle(b"\x01" * 8, b"\x02" * 8), SaHandle(b"\x03" * 8, b"\x04" * 8)
    agent._on_Phase1Deleted(Phase1Deleted(old, "rekeyed", replaced_by=new))
    assert agent.status.state == "connected"
    assert not agent.loop._timers
