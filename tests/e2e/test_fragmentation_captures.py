"""The Fragmentation Policy on the wire (issue 11): each policy's capture shows its own kind
of fragment, and tshark, given only the keys the concentrator exports, dissects and
decrypts them with every ESP ICV good.

- fragment-encapsulated (the default): a full-size DF echo is sealed whole and the ESP-in-UDP
  datagram leaves the concentrator in IP fragments (tshark reassembles the outer packet,
  then decrypts one 1500-byte inner echo, not fragmented);
- clear-df: the inner echo loses DF and is fragmented before encapsulation: whole ESP-in-UDP
  packets, each carrying one inner fragment;
- pmtud: the concentrator answers the DF echo with ICMP "fragmentation needed", MTU 1400,
  on its private side;
- the client's MTU (1300): its full-size echoes to the server leave it as inner fragments,
  each in a whole ESP-in-UDP packet.

One lab (fragmentation-policy.yaml with key export), the policy pushed between captures of
the public and private links.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT, RunningLab, bring_up, labctl
from .vpn_support import (
    LinkCapture,
    key_tables,
    topology_variant,
    tshark,
    tshark_rows,
    wireshark_profile,
)

TOPOLOGY = ROOT / "topologies" / "fragmentation-policy.yaml"
CONCENTRATOR, CLIENT, SERVER = "172.16.172.50", "40.1.1.1", "192.168.2.10"
CLIENT_NODE = "client1"
POLICIES = ("fragment-encapsulated", "clear-df", "pmtud")
ECHOES = 2


def _keys_and_no_scenarios(data: dict) -> None:
    data["topology"]["nodes"]["vpn3000"]["vpn"]["debug"] = {"export-keys": True}
    data.pop("scenarios", None)


def _set_policy(topology: Path, policy: str) -> None:
    data = yaml.safe_load(topology.read_text())
    data["topology"]["nodes"]["vpn3000"]["vpn"]["fragmentation-policy"] = policy
    topology.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[RunningLab]:
    topology = topology_variant(
        TOPOLOGY, tmp_path_factory.mktemp("topo") / "frag-keys.yaml", _keys_and_no_scenarios
    )
    running = None
    try:
        running = bring_up(topology, "frag")
        yield running
    finally:
        if running is not None:
            labctl("down", running.name, check=False)


@pytest.fixture(scope="module")
def captures(lab: RunningLab, tmp_path_factory) -> dict[str, dict[str, Path]]:
    """policy -> {link: pcap} of full-size DF echoes from the server to the client."""
    # The agents send runs of ESP packets as one UDP GSO send; they turn their interfaces'
    # UDP segmentation off so the kernel cuts the runs into datagrams before the wire (a tap
    # would otherwise see one oversized datagram tshark cannot take apart).
    for node, interface in ((CLIENT_NODE, "eth1"), ("vpn3000", "public")):
        features = lab.exec(node, "ethtool", "-k", interface).stdout
        assert "tx-udp-segmentation: off" in features, f"{node}:{interface}\n{features}"
    lab.exec(CLIENT_NODE, "vpn", "connect", "--wait", "--timeout", "30", check=False)
    assert "connected" in lab.exec(CLIENT_NODE, "vpn", "status").stdout
    out = tmp_path_factory.mktemp("captures")
    result: dict[str, dict[str, Path]] = {}
    # The client's MTU (1300, the Cisco client's default): its full-size echoes are
    # fragmented before encapsulation, on the client.
    tap = LinkCapture(lab, "outside", out / "client-mtu-outside.pcap").start()
    try:
        lab.exec(
            CLIENT_NODE,
            *("ping", "-n", "-c", str(ECHOES), "-i", "0.3", "-W", "1", "-s", "1472", SERVER),
            check=False,  # the replies are full-size too: the default policy loses them
        )
    finally:
        result["client-mtu"] = {"outside": tap.stop()}
    for policy in POLICIES:
        if policy != "fragment-encapsulated":
            _set_policy(lab.topology, policy)
            labctl("push", "--lab", lab.name, "vpn3000")
        taps = {
            link: LinkCapture(lab, link, out / f"{policy}-{link}.pcap").start()
            for link in ("public", "private")
        }
        try:
            lab.exec(
                "server",
                *("ping", "-n", "-M", "do", "-c", str(ECHOES), "-i", "0.3", "-W", "1"),
                *("-s", "1472", CLIENT),
                check=False,  # the default policy loses them at the PIX; pmtud refuses them
            )
        finally:
            result[policy] = {link: tap.stop() for link, tap in taps.items()}
    return result


@pytest.fixture(scope="module")
def profile(lab: RunningLab, captures) -> Iterator[dict[str, str]]:
    tables = key_tables(lab, "vpn3000")
    assert tables["esp_sa"].strip(), "the concentrator exported no ESP keys"
    with wireshark_profile(tables) as env:
        yield env


def _echoes(profile, pcap: Path) -> list[dict[str, list[str]]]:
    """ESP frames from the concentrator to the client: outer and inner header fields."""
    fields = ("ip.src", "ip.dst", "ip.len", "ip.flags.mf", "ip.frag_offset", "ip.flags.df")
    fields += ("esp.icv_good", "icmp.type")
    rows = tshark_rows(profile, pcap, f"esp && ip.src == {CONCENTRATOR}", *fields)
    return [dict(zip(fields, row, strict=True)) for row in rows]


def test_default_policy_fragments_the_esp_datagram(captures, profile) -> None:
    pcap = captures["fragment-encapsulated"]["public"]
    outer_fragments = tshark_rows(
        None, pcap, f"ip.src == {CONCENTRATOR} && ip.flags.mf == 1 && !esp", "ip.len"
    )
    assert len(outer_fragments) >= ECHOES, "no first fragment of an ESP datagram"
    echoes = [e for e in _echoes(profile, pcap) if e["icmp.type"] == ["8"]]
    assert len(echoes) >= ECHOES, echoes
    for e in echoes:
        assert e["esp.icv_good"] == ["1"], e
        assert e["ip.src"][-1] == SERVER and e["ip.dst"][-1] == CLIENT
        # the inner echo is whole: 1500 bytes, DF set, not a fragment
        assert (e["ip.len"][-1], e["ip.flags.mf"][-1], e["ip.frag_offset"][-1]) == (
            "1500",
            "0",
            "0",
        ), e
        assert e["ip.flags.df"][-1] == "1"


def test_clear_df_fragments_the_inner_packet(captures, profile) -> None:
    pcap = captures["clear-df"]["public"]
    echoes = [e for e in _echoes(profile, pcap) if e["ip.src"][-1] == SERVER]
    assert echoes, "no ESP from the concentrator"
    outer_fragments = tshark_rows(
        None, pcap, f"ip.src == {CONCENTRATOR} && ip.flags.mf == 1 && !esp", "ip.len"
    )
    assert not outer_fragments, "clear-df still fragmented an ESP datagram"
    first = [e for e in echoes if e["ip.flags.mf"][-1] == "1"]
    rest = [e for e in echoes if e["ip.frag_offset"][-1] not in ("0", "")]
    assert len(first) >= ECHOES and len(rest) >= ECHOES, echoes
    for e in first + rest:
        assert e["esp.icv_good"] == ["1"], e
        assert e["ip.flags.mf"][0] == "0" and e["ip.frag_offset"][0] == "0"  # outer whole
        assert e["ip.flags.df"][-1] == "0", "the concentrator left DF set"
        assert int(e["ip.len"][0]) <= 1500


def test_the_client_mtu_fragments_before_encapsulation(captures, profile) -> None:
    # past the PIX: the keys the concentrator exported name the PIX's address as the peer
    pcap = captures["client-mtu"]["outside"]
    fields = ("ip.src", "ip.len", "ip.flags.mf", "ip.frag_offset", "esp.icv_good")
    rows = tshark_rows(profile, pcap, "esp && ip.src == 171.69.89.78", *fields)
    echoes = [dict(zip(fields, row, strict=True)) for row in rows]
    echoes = [e for e in echoes if e["ip.src"][-1] == CLIENT]
    first = [e for e in echoes if e["ip.flags.mf"][-1] == "1"]
    rest = [e for e in echoes if e["ip.frag_offset"][-1] not in ("0", "")]
    assert len(first) >= ECHOES and len(rest) >= ECHOES, echoes
    for e in first + rest:
        assert e["esp.icv_good"] == ["1"], e
        assert e["ip.flags.mf"][0] == "0" and e["ip.frag_offset"][0] == "0"  # outer whole
        assert int(e["ip.len"][-1]) <= 1300  # the adapter's MTU


def test_pmtud_answers_fragmentation_needed(captures, profile) -> None:
    rows = tshark_rows(
        None,
        captures["pmtud"]["private"],
        "icmp.type == 3 && icmp.code == 4",
        "ip.src",
        "ip.dst",
        "icmp.mtu",
    )
    assert rows, "no ICMP fragmentation needed on the private link"
    source, _, mtu = rows[0]
    assert source[0] == "192.168.2.251" and mtu == ["1400"], rows  # the concentrator's answer
    outer_fragments = tshark_rows(
        None, captures["pmtud"]["public"], f"ip.src == {CONCENTRATOR} && ip.flags.mf == 1", "ip.len"
    )
    assert not outer_fragments


def test_nothing_is_malformed(captures, profile) -> None:
    for policy, links in captures.items():
        for link, pcap in links.items():
            broken = "_ws.malformed || _ws.expert.severity >= error || esp.icv_bad == 1"
            assert not tshark_rows(profile, pcap, broken, "frame.number"), (policy, link)
            errors = tshark(profile, "-r", str(pcap), "-q", "-z", "expert,error")
            assert "Errors" not in errors, (policy, link, errors)
