"""The conntrack parser and `show xlate`, from real `conntrack -L -o xml` output.

The captures are the PIX of a running lab (conntrack v1.4.7 in the node image):
- captures/seed-pix-conntrack.xml: topologies/nat-t-two-clients.yaml, both clients
  reconnected and pinging the server through their tunnels, client1 pinging the
  concentrator, client2 sending one UDP datagram to a closed port (two such flows, one
  about to expire); also labctl's own SSH connections on the management interface.
- captures/ipsec-over-tcp-pix-conntrack.xml: topologies/ipsec-over-tcp.yaml, both clients
  connected over TCP 10000 and pinging the server.
"""

from __future__ import annotations

from ipaddress import IPv4Network
from pathlib import Path

import pytest

from labctl.state.xlate import (
    ConntrackParseError,
    Flow,
    parse_conntrack_xml,
    render_xlate,
    xlate_entries,
)

CAPTURES = Path(__file__).parent / "captures"
INSIDE = [IPv4Network("10.10.10.0/24")]
PIX = "171.69.89.78"
VPN3000 = "172.16.172.50"


def capture(name: str) -> str:
    return (CAPTURES / name).read_text()


@pytest.fixture(scope="module")
def seed_flows() -> list[Flow]:
    return parse_conntrack_xml(capture("seed-pix-conntrack.xml"))


def by_local(flows: list[Flow], protocol: str, local: str, port: int | None) -> Flow:
    found = [f for f in flows if (f.protocol, f.orig_src, f.orig_sport) == (protocol, local, port)]
    assert len(found) == 1, found
    return found[0]


def test_every_flow_of_the_capture_is_read(seed_flows: list[Flow]) -> None:
    assert len(seed_flows) == 15  # `conntrack -L`: "15 flow entries have been shown"
    assert sorted({f.protocol for f in seed_flows}) == ["icmp", "tcp", "udp"]


def test_nat_t_flows_carry_both_tuples_and_counters(seed_flows: list[Flow]) -> None:
    client2 = by_local(seed_flows, "udp", "10.10.10.3", 4500)
    assert (client2.orig_dst, client2.orig_dport) == (VPN3000, 4500)
    # The PAT moved client2's 4500 to another global port; the reply goes there.
    assert (client2.reply_src, client2.reply_sport) == (VPN3000, 4500)
    assert (client2.reply_dst, client2.reply_dport) == (PIX, 39412)
    assert client2.assured and not client2.unreplied and client2.state is None
    assert (client2.packets, client2.bytes) == (21, 2908)
    assert (client2.reply_packets, client2.reply_bytes) == (15, 2140)
    assert client2.timeout == 113


def test_ike_on_udp_500_moves_to_a_low_port_when_500_is_taken(seed_flows: list[Flow]) -> None:
    client1 = by_local(seed_flows, "udp", "10.10.10.2", 500)
    client2 = by_local(seed_flows, "udp", "10.10.10.3", 500)
    assert client1.reply_dport == 500
    assert client2.reply_dport == 191  # Linux keeps a privileged port privileged
    assert not client2.assured and not client2.unreplied


def test_icmp_flows_have_no_ports(seed_flows: list[Flow]) -> None:
    pings = [f for f in seed_flows if f.protocol == "icmp"]
    assert len(pings) == 2
    for ping in pings:
        assert (ping.orig_sport, ping.orig_dport, ping.reply_sport, ping.reply_dport) == (
            None,
            None,
            None,
            None,
        )
        assert (ping.orig_src, ping.reply_dst, ping.packets, ping.reply_packets) == (
            "10.10.10.2",
            PIX,
            2,
            2,
        )


def test_an_unreplied_flow_is_marked_and_counts_nothing_back(seed_flows: list[Flow]) -> None:
    flow = by_local(seed_flows, "udp", "10.10.10.3", 36786)
    assert flow.unreplied and not flow.assured
    assert (flow.orig_dport, flow.packets, flow.reply_packets, flow.reply_bytes) == (9999, 1, 0, 0)


def test_tcp_flows_carry_their_state(seed_flows: list[Flow]) -> None:
    ssh = [f for f in seed_flows if f.protocol == "tcp"]
    assert {f.state for f in ssh} == {"ESTABLISHED", "TIME_WAIT"}
    assert all(f.assured and 22 in (f.orig_dport, f.orig_sport) for f in ssh)


def test_show_xlate_lists_the_inside_translations_only(seed_flows: list[Flow]) -> None:
    entries = xlate_entries(seed_flows, INSIDE)
    # labctl's SSH connections on the management interface are not translations.
    assert {e.local_ip for e in entries} == {"10.10.10.2", "10.10.10.3"}
    assert render_xlate(entries) == (
        "8 in use\n"
        f"PAT Global {PIX} Local 10.10.10.2 (icmp)\n"
        f"PAT Global {PIX} Local 10.10.10.2 (icmp)\n"
        f"PAT Global {PIX}(191) Local 10.10.10.3(500)\n"
        f"PAT Global {PIX}(500) Local 10.10.10.2(500)\n"
        f"PAT Global {PIX}(4500) Local 10.10.10.2(4500)\n"
        f"PAT Global {PIX}(36786) Local 10.10.10.3(36786)\n"
        f"PAT Global {PIX}(39412) Local 10.10.10.3(4500)\n"
        f"PAT Global {PIX}(55478) Local 10.10.10.3(55478)\n"
    )
    states = {(e.protocol, e.local_ip, e.local_port): e.state for e in entries}
    assert states[("udp", "10.10.10.3", 4500)] == "ASSURED"
    assert states[("udp", "10.10.10.2", 500)] == "REPLIED"
    assert states[("udp", "10.10.10.3", 36786)] == "UNREPLIED"


def test_show_xlate_json_records_of_a_nat_t_translation(seed_flows: list[Flow]) -> None:
    entries = xlate_entries(seed_flows, INSIDE)
    record = next(e.to_json() for e in entries if e.global_port == 39412)
    assert record == {
        "protocol": "udp",
        "local_ip": "10.10.10.3",
        "local_port": 4500,
        "global_ip": PIX,
        "global_port": 39412,
        "remote_ip": VPN3000,
        "remote_port": 4500,
        "state": "ASSURED",
        "timeout": 113,
        "packets_out": 21,
        "bytes_out": 2908,
        "packets_in": 15,
        "bytes_in": 2140,
    }


def test_ipsec_over_tcp_translations() -> None:
    flows = parse_conntrack_xml(capture("ipsec-over-tcp-pix-conntrack.xml"))
    entries = xlate_entries(flows, INSIDE)
    assert [(e.protocol, e.local_ip, e.global_port, e.remote_port, e.state) for e in entries] == [
        ("tcp", "10.10.10.2", 39678, 10000, "ESTABLISHED"),
        ("tcp", "10.10.10.3", 54974, 10000, "ESTABLISHED"),
    ]
    assert render_xlate(entries, verbose=True).splitlines()[1] == (
        f"PAT Global {PIX}(39678) Local 10.10.10.2(39678) tcp -> {VPN3000}(10000) "
        "ESTABLISHED timeout 431997s"
    )


def test_traffic_to_the_firewall_itself_is_no_translation(seed_flows: list[Flow]) -> None:
    # labctl's SSH to the PIX's management address, as if it came from an inside network.
    assert xlate_entries(seed_flows, [IPv4Network("172.30.0.0/24")]) == []


def test_no_output_is_no_flow() -> None:
    assert parse_conntrack_xml("") == []
    assert parse_conntrack_xml("\n") == []


@pytest.mark.parametrize(
    "text",
    [
        capture("seed-pix-conntrack.xml")[:1000],  # cut off mid-flow
        "conntrack v1.4.7 (conntrack-tools): Operation not permitted",
    ],
    ids=["truncated", "not-xml"],
)
def test_output_that_is_not_conntrack_xml_is_one_error(text: str) -> None:
    with pytest.raises(ConntrackParseError, match=r"^conntrack XML: "):
        parse_conntrack_xml(text)


def test_a_flow_without_its_reply_tuple_is_an_error() -> None:
    text = capture("ipsec-over-tcp-pix-conntrack.xml")
    damaged = text.replace('<meta direction="reply">', '<meta direction="elsewhere">', 1)
    with pytest.raises(ConntrackParseError, match="without original/reply"):
        parse_conntrack_xml(damaged)
