"""The client fleet without Docker: settings from the rendered topology, the members'
identities, the connect storm's pace and window, and the in-process pings."""

from __future__ import annotations

import json
import struct
from ipaddress import IPv4Address
from pathlib import Path
from types import SimpleNamespace

import pytest

from labctl.agent.control import ControlError
from labctl.agent.fleet import FleetAgent
from labctl.agent.fleet_ping import (
    PingRun,
    checksum,
    echo_request,
    parse_echo_reply,
    percentile,
)
from labctl.agent.fleet_settings import FleetSettings, members_of
from labctl.agent.loop import EventLoop
from labctl.agent.settings import SettingsError, listeners, parse_settings
from labctl.render import render_node
from labctl.topology import TopologyError, load_lab, load_lab_text

ROOT = Path(__file__).resolve().parents[3]
FLEET = ROOT / "topologies" / "fleet-clients.yaml"


def _vpn_json() -> dict:
    config = render_node(load_lab(FLEET), "fleet")
    vpn_json = next(f for f in config.files if f.path.endswith("vpn.json"))
    return json.loads(vpn_json.content)


def test_rendered_fleet_settings_give_each_member_its_user_address_and_name() -> None:
    settings = parse_settings(_vpn_json())
    assert isinstance(settings, FleetSettings)
    assert (settings.interface, settings.connect_rate, settings.max_connecting) == ("eth1", 25, 25)
    members = settings.members()
    assert len(members) == 50
    m17 = members[16]
    assert (m17.number, m17.name, m17.user, m17.address) == (
        17,
        "fleet/17",
        "vpnclient17",
        IPv4Address("10.20.0.17"),
    )
    client = settings.member_settings(m17)
    assert (client.user, client.node, client.group) == ("vpnclient17", "fleet/17", "ciscovpn")
    assert client.password == "labpw" and "labpw" not in repr(client)
    # the fleet starts its storm itself (auto-connect: false); members still reconnect
    assert client.auto_connect and not settings.auto_connect
    # the members' addresses do not exist before the agent adds them: nothing to probe
    assert listeners(settings) == []


def test_members_keep_padding_and_refuse_a_user_without_one_range() -> None:
    padded = members_of("u{008..011}x", IPv4Address("10.0.0.254"), "f")
    assert [(m.user, str(m.address)) for m in padded] == [
        ("u008x", "10.0.0.254"),
        ("u009x", "10.0.0.255"),
        ("u010x", "10.0.1.0"),
        ("u011x", "10.0.1.1"),
    ]
    with pytest.raises(SettingsError, match="one range"):
        members_of("vpnclient1", IPv4Address("10.0.0.1"), "f")


def test_a_fleet_that_is_not_nat_t_is_refused_by_the_agent() -> None:
    data = _vpn_json()
    data["vpn"]["transparent_tunneling"]["mode"] = "udp"
    with pytest.raises(SettingsError, match="NAT-T only"):
        parse_settings(data)


def _with_fleet(old: str, new: str) -> list[str]:
    text = FLEET.read_text()
    assert old in text
    with pytest.raises(TopologyError) as error:
        load_lab_text(text.replace(old, new, 1), ROOT / "topologies" / "t.yaml")
    return [f"{issue.field}: {issue.message}" for issue in error.value.issues]


def test_validate_names_overlapping_addresses_and_missing_users() -> None:
    errors = _with_fleet("addresses: 10.20.0.1", "addresses: 10.10.10.100")
    assert any("overlap eth1's subnet 10.10.10.0/24" in e for e in errors), errors
    errors = _with_fleet('user: "vpnclient{1..50}"', 'user: "vpnclient{1..60}"')
    assert any("lacks 10 of the fleet's users (first: 'vpnclient51')" in e for e in errors)
    errors = _with_fleet('user: "vpnclient{1..50}"', "user: vpnclient1")
    assert any(e.startswith("topology.nodes.fleet.vpn.user") for e in errors), errors


def test_echo_request_is_a_valid_ipv4_icmp_packet_and_replies_are_read() -> None:
    packet = echo_request("40.1.1.17", "192.168.2.10", 17, 2)
    assert len(packet) == 20 + 8 + 32
    assert checksum(packet[:20]) == 0 and checksum(packet[20:]) == 0
    assert packet[12:16] == IPv4Address("40.1.1.17").packed and packet[9] == 1
    assert parse_echo_reply(packet) is None  # a request is not a reply
    # the server's answer: addresses swapped, type 0
    reply = bytearray(packet)
    reply[12:16], reply[16:20] = packet[16:20], packet[12:16]
    reply[20] = 0
    assert parse_echo_reply(bytes(reply)) == ("192.168.2.10", 17, 2)
    assert parse_echo_reply(bytes(reply[:27])) is None


def test_ping_run_counts_each_echo_once_and_names_who_lost() -> None:
    run = PingRun("192.168.2.10", waves=1, interval=1.0, started=0.0)
    run.sent = {(1, 0): 0.0, (2, 0): 0.0}
    run.names = {1: "fleet/1", 2: "fleet/2"}
    assert not run.reply("10.9.9.9", 1, 0, 0.1)  # not the address pinged
    assert run.reply("192.168.2.10", 1, 0, 0.1)
    assert not run.reply("192.168.2.10", 1, 0, 0.2)  # a duplicate
    result = run.result()
    assert (result["sent"], result["received"], result["lost"]) == (2, 1, 1)
    assert result["lost_members"] == ["fleet/2"] and result["rtt_p50_ms"] == 100.0


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile([], 50)) == (50, 99, None)
    assert percentile([3.0], 99) == 3.0


class _Member:
    def __init__(self) -> None:
        self.status = SimpleNamespace(state="disconnected")
        self.want_connected = False

    def connect(self) -> str:
        self.status.state = "connecting"
        return "connecting"


def _storm(count: int, rate: float, window: int) -> tuple[FleetAgent, list[_Member]]:
    agent = FleetAgent.__new__(FleetAgent)  # no sockets, no aliases: the pacing only
    agent.settings = SimpleNamespace(connect_rate=rate, max_connecting=window)
    agent.loop = EventLoop()
    agent.members = [_Member() for _ in range(count)]  # type: ignore[list-item]
    agent.storm, agent.storm_queue, agent.storm_started = None, [], None
    agent.storm_budget, agent.in_flight = 0.0, set()
    return agent, agent.members  # type: ignore[return-value]


def test_the_storm_keeps_its_pace_and_its_window() -> None:
    agent, members = _storm(10, rate=100.0, window=3)
    agent.connect()
    started = [m for m in members if m.status.state == "connecting"]
    assert len(started) == 2  # 100/s in 20 ms ticks: two per tick
    agent._storm_step()
    assert sum(m.status.state == "connecting" for m in members) == 3  # the window is full
    agent._storm_step()
    assert sum(m.status.state == "connecting" for m in members) == 3
    for member in members[:3]:
        member.status.state = "connected"
    agent._storm_step()
    assert sum(m.status.state != "disconnected" for m in members) == 5
    slow, slow_members = _storm(4, rate=10.0, window=100)
    slow.connect()
    assert sum(m.status.state == "connecting" for m in slow_members) == 1
    for _ in range(4):  # 10/s in 20 ms ticks: one every five ticks
        slow._storm_step()
    assert sum(m.status.state == "connecting" for m in slow_members) == 1
    slow._storm_step()
    assert sum(m.status.state == "connecting" for m in slow_members) == 2


def test_checksum_of_odd_length_data() -> None:
    assert checksum(b"\x01") == ~0x0100 & 0xFFFF
    assert struct.pack("!H", checksum(b"\x00\x01\xf2\x03")) == b"\x0d\xfb"


def test_reconnects_wait_their_turn_in_the_storm() -> None:
    agent, members = _storm(6, rate=100.0, window=2)
    for member in members:
        member.want_connected = True
        agent._requeue(member)  # type: ignore[arg-type]
    agent._requeue(members[0])  # type: ignore[arg-type]  # twice: queued once
    assert len(agent.storm_queue) == 6 and agent.storm is not None
    agent._storm_step()
    assert sum(m.status.state == "connecting" for m in members) == 2


def test_a_ping_with_a_bad_address_or_no_waves_is_refused() -> None:
    agent, _ = _storm(1, rate=1.0, window=1)
    agent.ping_run = None
    with pytest.raises(ControlError, match="not an IPv4 address"):
        agent.ping("server", 3, 1.0)
    with pytest.raises(ControlError, match="waves 1-1000"):
        agent.ping("192.168.2.10", 0, 1.0)
