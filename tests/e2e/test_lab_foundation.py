"""Issue 2 acceptance: the seed lab's network, for real, in Docker."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import docker
import pytest

from .conftest import SEED, RunningLab, bring_up, kill_up_half_way, labctl, unique_lab_name
from .host_snapshot import host_firewall_rules, host_routes, lab_footprint

SEED_NODES = {"client1", "client2", "pix", "router", "vpn3000", "server"}


def udp_probe_from_4500(lab: RunningLab, client: str) -> None:
    """One datagram from the client's UDP 4500 to the concentrator's 4500 (NAT-T ports).

    The network alone is under test here: the client's VPN agent (which holds UDP 4500) is
    stopped first, so the probe is the only traffic from that port."""
    lab.exec(client, "vpn", "service", "stop")
    lab.exec(client, "sh", "-c", "printf probe | nc -u -w1 -p 4500 172.16.172.50 4500")


def forget_translations(lab: RunningLab) -> None:
    """Stop both clients' agents and flush the PIX's conntrack: no translation is left."""
    for client in ("client1", "client2"):
        lab.exec(client, "vpn", "service", "stop")
    lab.exec("pix", "conntrack", "-F")


def probe_both_clients(lab: RunningLab) -> list[dict]:
    """No translation left, then a UDP 4500 probe from each client: the PIX's 4500 entries."""
    forget_translations(lab)
    udp_probe_from_4500(lab, "client1")
    udp_probe_from_4500(lab, "client2")
    return [e for e in lab.show_json("pix", "xlate") if e["local_port"] == 4500]


def test_status_lists_every_node_running_with_a_mgmt_address(seed_lab: RunningLab) -> None:
    rows = json.loads(labctl("status", seed_lab.name, "--json").stdout)
    assert {r["node"] for r in rows} == SEED_NODES
    assert all(r["state"] == "running" and r["mgmt_ipv4"] for r in rows)
    kinds = {r["node"]: r["kind"] for r in rows}
    assert kinds["pix"] == "pat-firewall" and kinds["vpn3000"] == "concentrator"


def test_both_clients_reach_the_concentrator_through_the_pix(seed_lab: RunningLab) -> None:
    for client in ("client1", "client2"):
        result = seed_lab.exec(client, "ping", "-c", "2", "-W", "2", "172.16.172.50")
        assert " 0% packet loss" in result.stdout, result.stdout
    # The concentrator saw the PIX's global address, not the clients' own.
    flows = seed_lab.show_json("pix", "xlate")
    icmp = [f for f in flows if f["protocol"] == "icmp" and f["remote_ip"] == "172.16.172.50"]
    assert {f["local_ip"] for f in icmp} == {"10.10.10.2", "10.10.10.3"}
    assert {f["global_ip"] for f in icmp} == {"171.69.89.78"}
    assert all(f["packets_in"] and f["packets_in"] >= 2 for f in icmp), icmp


def test_udp_4500_probes_give_two_pat_entries_one_global_address_two_ports(
    seed_lab: RunningLab,
) -> None:
    forget_translations(seed_lab)
    assert not [e for e in seed_lab.show_json("pix", "xlate") if e["protocol"] == "udp"]
    udp_probe_from_4500(seed_lab, "client1")
    udp_probe_from_4500(seed_lab, "client2")
    entries = [
        e
        for e in seed_lab.show_json("pix", "xlate")
        if e["protocol"] == "udp" and e["local_port"] == 4500 and e["remote_port"] == 4500
    ]
    by_client = {e["local_ip"]: e for e in entries}
    assert set(by_client) == {"10.10.10.2", "10.10.10.3"}, entries
    assert {e["global_ip"] for e in entries} == {"171.69.89.78"}
    assert by_client["10.10.10.2"]["global_port"] != by_client["10.10.10.3"]["global_port"]
    assert all(e["bytes_out"] and e["bytes_out"] > 0 for e in entries), entries
    text = labctl("show", "--lab", seed_lab.name, "pix", "xlate").stdout
    for entry in entries:
        assert (
            f"PAT Global 171.69.89.78({entry['global_port']}) Local {entry['local_ip']}(4500)"
            in text
        ), text


def test_private_host_is_unreachable_without_a_tunnel(seed_lab: RunningLab) -> None:
    result = seed_lab.exec("client1", "ping", "-c", "1", "-W", "1", "192.168.2.10", check=False)
    assert result.returncode != 0
    route = seed_lab.exec("router", "ip", "route", "get", "192.168.2.10", check=False)
    assert route.returncode != 0 and "unreachable" in (route.stderr + route.stdout)


def test_nodes_have_no_route_out_of_the_lab(seed_lab: RunningLab) -> None:
    for node in SEED_NODES:
        routes = json.loads(seed_lab.exec(node, "ip", "-j", "route").stdout)
        via_mgmt = [r for r in routes if r.get("dev") == "eth0"]
        # Only the management subnet itself, never a default or gateway route.
        assert all("gateway" not in r and r["dst"] != "default" for r in via_mgmt), (node, routes)
    # Where lab routing ends (the "internet" router), outside addresses are unreachable.
    result = seed_lab.exec("router", "ip", "route", "get", "192.0.2.1", check=False)
    assert result.returncode != 0


def test_arp_table_shows_the_pix_neighbours(seed_lab: RunningLab) -> None:
    seed_lab.exec("client1", "ping", "-c", "1", "-W", "2", "10.10.10.1")
    entries = seed_lab.show_json("pix", "arp")
    assert any(
        e["interface"] == "inside" and e["ip"] == "10.10.10.2" and e["mac"] for e in entries
    ), entries
    assert all(e["interface"] != "eth0" for e in entries)


def test_push_reloads_the_firewall_without_restarting_it(seed_lab: RunningLab) -> None:
    client = docker.from_env()
    container = client.containers.get(f"labctl-{seed_lab.name}-pix")
    started = container.attrs["State"]["StartedAt"]
    udp_probe_from_4500(seed_lab, "client1")
    before = {(e["local_ip"], e["global_port"]) for e in seed_lab.show_json("pix", "xlate")}
    labctl("push", "--lab", seed_lab.name, "pix")
    container.reload()
    assert container.attrs["State"]["StartedAt"] == started
    after = {(e["local_ip"], e["global_port"]) for e in seed_lab.show_json("pix", "xlate")}
    assert before & after, "existing translations must survive a ruleset reload"
    ruleset = seed_lab.exec("pix", "nft", "list", "table", "ip", "labctl_pat").stdout
    assert "masquerade" in ruleset


def test_up_is_idempotent_on_a_running_lab(seed_lab: RunningLab) -> None:
    ids_before = {
        c.id
        for c in docker.from_env().containers.list(filters={"label": f"labctl.lab={seed_lab.name}"})
    }
    result = labctl("up", str(SEED), "--name", seed_lab.name)
    assert "already up" in result.stderr
    ids_after = {
        c.id
        for c in docker.from_env().containers.list(filters={"label": f"labctl.lab={seed_lab.name}"})
    }
    assert ids_before == ids_after


def test_two_copies_side_by_side_and_down_leaves_nothing() -> None:
    routes_before, rules_before = host_routes(), host_firewall_rules()
    first = second = None
    try:
        first = bring_up(SEED, "twin-a")
        second = bring_up(SEED, "twin-b")
        # The same probes in both labs at once (each lab's own nodes; mostly waiting on
        # SSH sessions and nc's 1 s): each lab's entries are checked on its own.
        with ThreadPoolExecutor(max_workers=2) as pool:
            for entries in pool.map(probe_both_clients, (first, second)):
                assert {e["local_ip"] for e in entries} == {"10.10.10.2", "10.10.10.3"}
                assert len({e["global_port"] for e in entries}) == 2
        # The labs are separate networks: traffic in one never shows in the other.
        lab_a = first.show_json("pix", "conntrack")
        lab_b = second.show_json("pix", "conntrack")
        assert lab_a and lab_b
        assert host_routes() == routes_before, "a lab changed the host's routes"
        assert host_firewall_rules() == rules_before, "a lab changed the host's firewall"
    finally:
        for lab in (first, second):
            if lab:
                labctl("down", lab.name)
    for lab in (first, second):
        assert lab is not None
        footprint = lab_footprint(lab.name)
        assert footprint.empty, footprint
    assert host_routes() == routes_before
    assert host_firewall_rules() == rules_before


def test_down_cleans_up_after_labctl_is_killed_during_up() -> None:
    name = unique_lab_name("killed")
    try:
        kill_up_half_way(name)
        assert not lab_footprint(name).empty, "nothing was left to clean: the test proves nothing"
    finally:
        labctl("down", name)
    footprint = lab_footprint(name)
    assert footprint.empty, footprint


BROKEN = [
    ("kind: router", "kind: rooter"),
    ("10.10.10.3/24", "10.10.11.3/24"),
    ("client2:eth1]", "client3:eth1]"),
]


@pytest.mark.parametrize(("old", "new"), BROKEN)
def test_invalid_topology_creates_nothing(tmp_path, old: str, new: str) -> None:
    name = unique_lab_name("broken")
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        SEED.read_text().replace(old, new).replace("name: nat-t-two-clients", f"name: {name}")
    )
    result = labctl("up", str(broken), check=False)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines and all(line.startswith(f"{broken}:") for line in lines), result.stderr
    assert lab_footprint(name).empty
