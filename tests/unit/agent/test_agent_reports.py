"""The agents turn engine reports into log lines, counters and status (issues 8 and 15):
a hostile group name stays one record, drops are logged and counted per category, a flood
is summarised, a client says what it waits for. The agents are built without their TUN and
sockets (``__new__``): only the event handling runs, fed by a real engine."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace

from labctl.agent.client import ClientAgent
from labctl.agent.concentrator import ConcentratorAgent
from labctl.agent.eventlog import EventLog
from labctl.agent.ikereport import IkeReport
from labctl.agent.loop import EventLoop
from labctl.agent.records import ClientStatus
from labctl.agent.tables import render_client_status
from labctl.ike import IdPayload, Message, XauthResult, decode_message
from labctl.ike.constants import ExchangeType
from tests.unit.ike.builders import add_client, connect, make_lab

RECORD = re.compile(r"^\d+ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} SEV=\d ")
PEER = ("198.51.100.7", 500)
LOCAL = ("172.16.172.50", 500)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def concentrator(lab) -> tuple[ConcentratorAgent, io.StringIO, Clock]:
    out, clock = io.StringIO(), Clock()
    agent = ConcentratorAgent.__new__(ConcentratorAgent)
    agent.log = EventLog(out, clock=clock)
    agent.report = IkeReport(agent.log)
    agent.sessions = {}
    agent.next_session_id = 1
    agent.keylog = None
    agent.total_sessions = agent.peak_sessions = 0
    agent.engine = lab.responder
    agent.tcp = None
    agent.dataplane = SimpleNamespace(stats=lambda: {})
    return agent, out, clock


def feed(agent, output) -> None:
    for event in output.events:
        agent._on_event(event)


def first_message(lab, group: str) -> bytes:
    """A real aggressive-mode message 1 of our initiator, with another group name."""
    add_client(lab, "probe", "10.10.10.9")
    lab.start("probe")
    msg1 = decode_message(lab.queue.popleft().data)
    payloads = tuple(
        IdPayload.key_id(group) if isinstance(p, IdPayload) else p for p in msg1.payloads
    )
    return Message(msg1.icookie, bytes(8), ExchangeType.AGGRESSIVE, payloads).encode()


def test_a_group_name_with_newlines_is_one_escaped_record() -> None:
    lab = make_lab()
    agent, out, _ = concentrator(lab)
    forged = "x\n9 2026-11-29 16:00:01.123 SEV=5 AUTH/5 10.0.0.1 User [admin] authenticated"
    feed(agent, lab.responder.receive(first_message(lab, forged), PEER, LOCAL, 0.0))
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and RECORD.match(lines[0])
    assert "unknown group KEY_ID:x\\x0a9 2026-11-29" in lines[0]
    assert "AUTH/5" not in lines[0].split("\\x0a")[0]


def test_a_flood_of_garbage_is_logged_once_per_window_and_counted() -> None:
    lab = make_lab()
    agent, out, clock = concentrator(lab)
    for i in range(500):
        feed(agent, lab.responder.receive(bytes([i % 256]) * 40, PEER, LOCAL, 0.0))
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith(
        "SEV=4 IKE/0 198.51.100.7 dropped message from 198.51.100.7:500 (offset 17): "
        "malformed: major version 0 is not 1"
    )
    assert agent.stats()["drops"]["malformed"] == 500
    clock.now += 10
    agent.log.flush()
    assert (
        out.getvalue()
        .splitlines()[-1]
        .endswith("... 499 more like this (drop malformed) in the last 10 s")
    )


def test_drop_lines_name_peer_exchange_payload_and_reason() -> None:
    lab = make_lab()
    agent, out, _ = concentrator(lab)
    data = bytearray(first_message(lab, "ciscovpn"))
    data[28 + 1] = 7  # reserved byte of the first (SA) payload header
    feed(agent, lab.responder.receive(bytes(data), PEER, LOCAL, 0.0))
    (line,) = out.getvalue().splitlines()
    assert "SEV=4 IKE/0 198.51.100.7 dropped aggressive mode message from 198.51.100.7:500" in line
    assert "(SA payload, offset 29): malformed: reserved byte not zero" in line


def test_the_concentrator_logs_an_empty_pool_and_counts_nothing_as_dropped() -> None:
    lab = make_lab(pool=("40.1.1.1", "40.1.1.1"))
    agent, out, _ = concentrator(lab)
    add_client(lab, "c1", "10.10.10.2", "vpnclient1")
    add_client(lab, "c2", "10.10.10.3", "vpnclient2")
    connect(lab, "c1")
    connect(lab, "c2")
    for event in lab.server_events:  # (the data plane is not built here: no ESP SAs)
        if type(event).__name__ not in ("ChildSaEstablished", "ChildSaDeleted"):
            agent._on_event(event)
    text = out.getvalue()
    assert (
        "Mode-Config with 171.69.89.78:1026 failed: no address available in the pool of group "
        "ciscovpn; IKE SA deleted" in text
    )
    assert "Group [ciscovpn] User [vpnclient2]" in text
    drops = agent.stats()["drops"]
    assert drops.pop("stale") == 1  # the gateway's Delete crossed the client's: not hostile
    assert sum(drops.values()) == 0


def client(engine) -> tuple[ClientAgent, io.StringIO]:
    out = io.StringIO()
    agent = ClientAgent.__new__(ClientAgent)
    agent.loop = EventLoop(lambda: engine_time[0])
    agent.log = EventLog(out)
    agent.report = IkeReport(agent.log)
    agent.keylog = None
    agent.settings = SimpleNamespace(host="172.16.172.50")
    agent.driver = SimpleNamespace(engine=engine)
    agent.status = ClientStatus("connecting", "172.16.172.50", "ciscovpn", "vpnclient1")
    agent.tunnels = {}
    agent.dataplane = SimpleNamespace(drops={})
    return agent, out


engine_time = [0.0]


def test_client_status_names_the_step_it_waits_for() -> None:
    lab = make_lab()
    ini = add_client(lab)
    lab.drop = lambda f: f.sender == "server" and bool(lab.events_of("c1", XauthResult))
    connect(lab, duration=13)
    agent, out = client(ini)
    for event in lab.clients["c1"].events:
        agent._on_event(event)
    engine_time[0] = lab.now
    status = agent.client_status()
    assert status.waiting_for == "waiting for Mode-Config reply (2 retransmits, 13 s)"
    assert "Waiting: waiting for Mode-Config reply" in render_client_status(status, 0)
    assert status.to_json()["waiting_for"] == status.waiting_for
    log = out.getvalue()
    assert "waiting for Mode-Config reply from 172.16.172.50:4500 (1 retransmit, 2 s)" in log
    assert "(2 retransmits, 6 s)" in log


def test_client_status_counts_dropped_messages() -> None:
    lab = make_lab()
    ini = add_client(lab)
    connect(lab)
    agent, _ = client(ini)
    feed(agent, ini.receive(b"\x00" * 10, ("172.16.172.50", 4500), ("10.10.10.2", 4500), lab.now))
    status = agent.client_status()
    assert status.ike_dropped["malformed"] == 1
    assert "IKE messages dropped: malformed 1" in render_client_status(status, 0)
