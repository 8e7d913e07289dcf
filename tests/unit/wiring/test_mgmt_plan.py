"""Management addresses: a private subnet per lab that avoids only the lab's own networks."""

from __future__ import annotations

from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path

import pytest

from labctl.topology import TopologyError, load_lab, load_lab_text
from labctl.wiring import MgmtPlanError, plan_mgmt

ROOT = Path(__file__).resolve().parents[3]
SEED = ROOT / "topologies" / "nat-t-two-clients.yaml"


def hosts_lab(count: int, subnet: str = "10.0.0.0/16", mgmt: str | None = None) -> str:
    network = IPv4Network(subnet)
    hosts = network.hosts()
    nodes = "\n".join(
        f"    h{i}: {{kind: host, interfaces: {{eth1: {next(hosts)}/{network.prefixlen}}}}}"
        for i in range(count)
    )
    endpoints = ", ".join(f'"h{i}:eth1"' for i in range(count))
    head = f"name: many\n{'mgmt: {ipv4-subnet: ' + mgmt + '}' if mgmt else ''}\n"
    return f"{head}topology:\n  nodes:\n{nodes}\n  links:\n    - endpoints: [{endpoints}]\n"


def test_seed_lab_gets_the_first_candidate_bridge_first_then_nodes_in_order() -> None:
    plan = plan_mgmt(load_lab(SEED))
    assert plan.subnet == IPv4Network("172.30.0.0/24")
    assert plan.bridge == IPv4Interface("172.30.0.1/24")
    assert plan.nodes == {
        "client1": IPv4Interface("172.30.0.2/24"),
        "client2": IPv4Interface("172.30.0.3/24"),
        "pix": IPv4Interface("172.30.0.4/24"),
        "router": IPv4Interface("172.30.0.5/24"),
        "vpn3000": IPv4Interface("172.30.0.6/24"),
        "server": IPv4Interface("172.30.0.7/24"),
    }
    assert plan.ports == {
        "client1": "m0",
        "client2": "m1",
        "pix": "m2",
        "router": "m3",
        "vpn3000": "m4",
        "server": "m5",
    }


def test_a_lab_using_the_first_candidates_gets_the_next_free_one() -> None:
    # The clients' LAN on 172.30.0.0/23: the first free /24 is 172.30.2.0/24 ...
    text = (
        SEED.read_text()
        .replace("10.10.10.1/24", "172.30.0.1/23")
        .replace("10.10.10.2/24", "172.30.0.2/23")
        .replace("10.10.10.3/24", "172.30.0.3/23")
        .replace("via 10.10.10.1", "via 172.30.0.1")
    )
    assert plan_mgmt(load_lab_text(text)).subnet == IPv4Network("172.30.2.0/24")
    # ... unless a node routes into it (its eth0 route would shadow the lab's route).
    text = text.replace(
        "routes: [default via 171.69.88.1]",
        "routes: [default via 171.69.88.1, 172.30.2.0/24 via 171.69.88.1]",
    )
    assert plan_mgmt(load_lab_text(text)).subnet == IPv4Network("172.30.3.0/24")


def test_vpn_pools_and_split_networks_are_avoided() -> None:
    text = SEED.read_text().replace("pool: 40.1.1.1-40.1.1.254", "pool: 172.30.0.10-172.30.0.20")
    assert plan_mgmt(load_lab_text(text)).subnet == IPv4Network("172.30.1.0/24")


def test_more_nodes_than_a_24_holds_get_a_larger_subnet() -> None:
    plan = plan_mgmt(load_lab_text(hosts_lab(300)))
    assert plan.subnet == IPv4Network("172.30.0.0/23")
    assert len(set(plan.nodes.values())) == 300
    assert plan.bridge.ip not in {i.ip for i in plan.nodes.values()}
    assert all(
        i.ip in plan.subnet and i.ip != plan.subnet.broadcast_address for i in plan.nodes.values()
    )


def test_a_named_subnet_is_used_as_it_is() -> None:
    plan = plan_mgmt(load_lab_text(hosts_lab(2, mgmt="192.168.77.0/29")))
    assert plan.bridge == IPv4Interface("192.168.77.1/29")
    assert [str(i) for i in plan.nodes.values()] == ["192.168.77.2/29", "192.168.77.3/29"]


def test_a_named_subnet_too_small_for_the_lab_is_refused_by_validation() -> None:
    with pytest.raises(TopologyError) as info:
        load_lab_text(hosts_lab(6, mgmt="192.168.77.0/29"))
    assert "mgmt.ipv4-subnet" in str(info.value)
    assert "192.168.77.0/29 has room for 5 nodes besides labctl's own address" in str(info.value)


def test_a_named_subnet_on_a_vpn_pool_is_refused_before_anything_is_made() -> None:
    text = SEED.read_text().replace(
        "pool: 40.1.1.1-40.1.1.254", "pool: 192.168.77.10-192.168.77.20"
    )
    text = text.replace("name: nat-t-two-clients", "name: p\nmgmt: {ipv4-subnet: 192.168.77.0/24}")
    with pytest.raises(MgmtPlanError, match=r"overlaps the lab's network 192\.168\.77\.10/31"):
        plan_mgmt(load_lab_text(text))
