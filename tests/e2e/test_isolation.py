"""Issue 8: the management plane reaches each node's SSH from labctl, and nothing else talks.

Every node of the seed lab probes, over its management interface, every other node's
management address (ICMP, TCP 22, and a TCP and UDP port this test opens in every node)
and a listener this test opens on the host (0.0.0.0, probed at every IPv4 address the host
has, after the node routes that address over its management interface as its root user
could). Each probe reports what actually happened; nothing may answer. Positive controls
show the probes and listeners work, so a silent result means isolation, not a broken probe.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from ipaddress import IPv4Interface
from pathlib import Path

import docker
import pytest

from labctl.lifecycle import LabHandle
from labctl.lifecycle.restart import restart_node
from labctl.runtime import DockerRuntime
from labctl.topology import load_lab_text

from .conftest import SEED, RunningLab, kill_up_half_way, labctl, unique_lab_name
from .host_snapshot import host_ipv4_addresses, host_state_of, lab_footprint
from .test_seed_vpn import wait_until

PROBE_SOURCE = (Path(__file__).parent / "isolation_probe.py").read_text()
NODE_PORT = 47001  # the TCP/UDP listener this test opens in every node
SEED_NODES = {"client1", "client2", "pix", "router", "vpn3000", "server"}
NOTHING = {"timeout"}  # the only outcome allowed: no answer of any kind came back


def _exec(container, *argv: str, detach: bool = False) -> str:
    result = container.exec_run(list(argv), detach=detach)
    if detach:
        return ""
    assert result.exit_code == 0, (container.name, argv, result.output.decode(errors="replace"))
    return result.output.decode()


def _probe(container, spec: dict) -> dict:
    """Run the probe script in the node (docker exec: independent of the plane under test)."""
    out = _exec(container, "python3", "-c", PROBE_SOURCE, "probe", json.dumps(spec))
    return json.loads(out.strip().splitlines()[-1])


@dataclass
class HostListener:
    """TCP and UDP on 0.0.0.0 of the host; records the source of everything that arrives."""

    port: int = 0
    peers: list[tuple[str, str]] = field(default_factory=list)

    def __enter__(self) -> HostListener:
        self._tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._tcp.bind(("0.0.0.0", 0))
        self.port = self._tcp.getsockname()[1]
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._udp.bind(("0.0.0.0", self.port))
        self._tcp.listen(64)
        self._tcp.settimeout(0.2)
        self._udp.settimeout(0.2)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._serve_tcp, daemon=True),
            threading.Thread(target=self._serve_udp, daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def _serve_tcp(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self._tcp.accept()
            except TimeoutError:
                continue
            self.peers.append(("tcp", peer[0]))
            conn.close()

    def _serve_udp(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._udp.recvfrom(2048)
            except TimeoutError:
                continue
            self.peers.append(("udp", peer[0]))
            self._udp.sendto(data, peer)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._tcp.close()
        self._udp.close()


@dataclass
class IsolationLab:
    lab: RunningLab
    containers: dict
    mgmt: dict[str, IPv4Interface]  # node -> its management interface address
    before: dict[str, list[str]]  # the host before the lab came up

    def container(self, node: str):
        return self.containers[node]


def _mgmt_interface(container) -> IPv4Interface:
    entries = json.loads(_exec(container, "ip", "-j", "-4", "addr", "show", "dev", "eth0"))
    info = entries[0]["addr_info"][0]
    return IPv4Interface(f"{info['local']}/{info['prefixlen']}")


@pytest.fixture(scope="module")
def iso_lab() -> Iterator[IsolationLab]:
    name = unique_lab_name("iso")
    before = host_state_of(name)
    lab = None
    try:
        labctl("up", str(SEED), "--name", name)
        lab = RunningLab(name, SEED)
        client = docker.from_env()
        containers = {
            c.labels["labctl.node"]: c
            for c in client.containers.list(filters={"label": f"labctl.lab={lab.name}"})
        }
        mgmt = {node: _mgmt_interface(c) for node, c in containers.items()}
        yield IsolationLab(lab, containers, mgmt, before)
    finally:
        if lab is not None:
            labctl("down", lab.name, check=False)


def _start_node_listeners(iso: IsolationLab) -> None:
    for container in iso.containers.values():
        _exec(container, "rm", "-f", "/tmp/iso-listener.log")
        _exec(
            container,
            "python3",
            "-c",
            PROBE_SOURCE,
            "listen",
            str(NODE_PORT),
            "/tmp/iso-listener.log",
            detach=True,
        )
    deadline = time.monotonic() + 10
    for node, container in iso.containers.items():
        while "listening" not in _exec(container, "cat", "/tmp/iso-listener.log"):
            assert time.monotonic() < deadline, f"the listener in {node} did not start"
            time.sleep(0.1)


def _node_listener_peers(container) -> list[str]:
    lines = _exec(container, "cat", "/tmp/iso-listener.log").splitlines()
    return [line for line in lines if not line.startswith("listening")]


def _targets_on(address: str, host_port: int | None = None) -> list[list]:
    port = host_port or NODE_PORT
    return [
        ["icmp", address, 0],
        ["tcp", address, 22],
        ["tcp", address, port],
        ["udp", address, port],
    ]


def in_fabric(lab: str, *argv: str):
    """A command's JSON output from inside the lab's fabric namespace (None if it failed)."""
    result = subprocess.run(
        ["ip", "netns", "exec", f"labctl-{lab}", *argv],
        capture_output=True,
        text=True,
        check=False,
    )
    return json.loads(result.stdout) if result.returncode == 0 else None


def _fabric_refused_packets(lab: str) -> int | None:
    """Packets the fabric's management firewall dropped (None: no such counter)."""
    listing = in_fabric(lab, "nft", "-j", "list", "counters")
    if listing is None:
        return None
    for item in listing["nftables"]:
        counter = item.get("counter")
        if counter and counter["name"] == "mgmt_refused":
            return counter["packets"]
    return None


def test_nodes_reach_neither_each_other_nor_the_host_over_management(iso_lab: IsolationLab) -> None:
    iso = iso_lab
    assert set(iso.containers) == SEED_NODES
    _start_node_listeners(iso)
    host_addrs = [a for a in host_ipv4_addresses() if not a.startswith("127.")]
    assert host_addrs, "the host has no IPv4 address besides loopback?"

    with HostListener() as host:
        # Positive controls: the probes and every listener do work when a path exists.
        own = {
            node: _probe(c, {"targets": _targets_on(str(iso.mgmt[node].ip))})["results"]
            for node, c in iso.containers.items()
        }
        assert all(set(r.values()) == {"ok"} for r in own.values()), own
        with socket.create_connection(("127.0.0.1", host.port), timeout=2):
            pass
        # the kernel completes the handshake before the listener thread logs the peer:
        # wait for it (bounded), not a fixed 0.3 s that a loaded machine can outlast
        wait_until("the host listener logged the connection", lambda: host.peers, 10, 0.1)
        assert host.peers == [("tcp", "127.0.0.1")], host.peers
        host.peers.clear()
        for node, container in iso.containers.items():  # its own TCP and UDP probe
            own_peer = str(iso.mgmt[node].ip)
            # a TCP probe is "ok" once connected, maybe before the listener logged it
            wait_until(
                f"{node}'s listener logged its own probes",
                lambda c=container: len(_node_listener_peers(c)) >= 2,
                10,
                0.2,
            )
            peers = sorted(_node_listener_peers(container))
            assert peers == [f"tcp {own_peer}", f"udp {own_peer}"], (node, peers)
        refused_before = _fabric_refused_packets(iso.lab.name)

        def direct(node: str) -> dict:
            """Over the management subnet as configured: other nodes and the gateway."""
            gateway = str(next(iso.mgmt[node].network.hosts()))
            targets = [
                t
                for other in iso.mgmt
                if other != node
                for t in _targets_on(str(iso.mgmt[other].ip))
            ]
            targets += _targets_on(gateway, host.port)
            return _probe(iso.container(node), {"targets": targets})

        def routed(node: str) -> dict:
            """After the node routes every other node and host address via its mgmt gateway."""
            interface = iso.mgmt[node]
            gateway = str(next(interface.network.hosts()))
            others = [str(iso.mgmt[o].ip) for o in iso.mgmt if o != node]
            routes = [[f"{a}/32", gateway] for a in others + host_addrs if a != gateway]
            targets = [t for a in others for t in _targets_on(a)]
            targets += [t for a in host_addrs for t in _targets_on(a, host.port)]
            return _probe(iso.container(node), {"routes": routes, "targets": targets})

        with ThreadPoolExecutor(max_workers=len(iso.containers)) as pool:
            direct_results = dict(
                zip(iso.containers, pool.map(direct, iso.containers), strict=True)
            )
            routed_results = dict(
                zip(iso.containers, pool.map(routed, iso.containers), strict=True)
            )
        time.sleep(0.5)
        host_peers = list(host.peers)

    answered = {
        (round_name, node, target): outcome
        for round_name, by_node in (("direct", direct_results), ("routed", routed_results))
        for node, out in by_node.items()
        for target, outcome in out["results"].items()
        if outcome not in NOTHING
    }
    assert not answered, (
        f"{len(answered)} probes got an answer over the management plane, e.g. "
        f"{dict(list(answered.items())[:12])}"
    )
    assert all(not r["route_errors"] for r in routed_results.values()), routed_results
    assert host_peers == [], f"the host's listener was reached from the lab: {host_peers}"
    for node, container in iso.containers.items():
        peers = _node_listener_peers(container)
        own_address = str(iso.mgmt[node].ip)
        assert all(line.endswith(own_address) for line in peers), (node, peers)

    # The routed probes reached the lab's fabric and were dropped there, counted.
    refused_after = _fabric_refused_packets(iso.lab.name)
    assert refused_before is not None and refused_after is not None
    routed_count = sum(len(r["results"]) for r in routed_results.values())
    assert refused_after - refused_before >= routed_count, (refused_before, refused_after)

    # ...and labctl's own management plane still works on every node.
    for node in iso.containers:
        result = iso.lab.exec(node, "hostname")
        assert result.stdout.strip() == node


def test_management_links_live_in_the_lab_fabric_only(iso_lab: IsolationLab) -> None:
    name = iso_lab.lab.name
    client = docker.from_env()
    assert client.networks.list(filters={"label": f"labctl.lab={name}"}) == []
    for node, container in iso_lab.containers.items():
        container.reload()
        assert container.attrs["HostConfig"]["NetworkMode"] == "none", container.name
        # Docker's networking is off altogether (no sandbox of its own, none of its
        # re-execs per start): IPv6 is off by the node's sysctls and labctl-init wrote
        # /etc/hosts, on every interface labctl made too
        assert container.attrs["Config"]["NetworkDisabled"] is True, container.name
        assert not container.attrs["NetworkSettings"]["SandboxKey"], container.name
        ipv6 = json.loads(_exec(container, "ip", "-j", "-6", "addr", "show"))
        assert [a for link in ipv6 for a in link.get("addr_info", [])] == [], (node, ipv6)
        hosts = _exec(container, "cat", "/etc/hosts").split("\n")
        assert "127.0.0.1\tlocalhost" in hosts and f"127.0.1.1\t{node}" in hosts, hosts
    fabric = in_fabric(name, "ip", "-j", "-d", "link", "show")
    by_index = {link["ifindex"]: link for link in fabric}
    assert [link["ifname"] for link in fabric if link["ifname"] == "mgmt"] == ["mgmt"]
    bridge_addr = in_fabric(name, "ip", "-j", "-4", "addr", "show", "mgmt")[0]["addr_info"][0]
    for node, container in iso_lab.containers.items():
        eth0 = json.loads(_exec(container, "ip", "-j", "-d", "link", "show", "eth0"))[0]
        port = by_index[eth0["link_index"]]
        assert port.get("master") == "mgmt", (node, port)
        assert port.get("ifalias") == f"{node}:eth0", (node, port)
        assert port["linkinfo"]["info_slave_data"]["isolated"] is True, (node, port)
        assert str(next(iso_lab.mgmt[node].network.hosts())) == bridge_addr["local"]
        routes = json.loads(_exec(container, "ip", "-j", "route", "show", "dev", "eth0"))
        assert all("gateway" not in r and r["dst"] != "default" for r in routes), (node, routes)


def test_a_restarted_node_comes_back_isolated_at_its_address(iso_lab: IsolationLab) -> None:
    """A restart gives the node a new namespace: labctl makes its eth0 again, same address,
    one isolated port per node, and the node still reaches no other."""
    name = iso_lab.lab.name
    lab = load_lab_text(SEED.read_text().replace("name: nat-t-two-clients", f"name: {name}"))
    with LabHandle.open(lab, DockerRuntime()) as handle:
        restart_node(handle, "server")
    server = docker.from_env().containers.get(f"labctl-{name}-server")
    assert (
        server.attrs["State"]["StartedAt"]
        != iso_lab.container("server").attrs["State"]["StartedAt"]
    )
    assert _mgmt_interface(server) == iso_lab.mgmt["server"]
    ports = in_fabric(name, "ip", "-j", "-d", "link", "show", "master", "mgmt")
    assert sorted(p["ifalias"] for p in ports) == sorted(f"{n}:eth0" for n in SEED_NODES)
    slave = {p["ifalias"]: p["linkinfo"]["info_slave_data"] for p in ports}["server:eth0"]
    assert slave["isolated"] is True and slave["learning"] is False, slave
    others = [str(iso_lab.mgmt[n].ip) for n in SEED_NODES - {"server"}]
    out = _probe(server, {"targets": [t for a in others for t in _targets_on(a)]})
    assert set(out["results"].values()) == NOTHING, out
    assert iso_lab.lab.exec("server", "hostname").stdout.strip() == "server"


def test_a_running_lab_changes_nothing_on_the_host(iso_lab: IsolationLab) -> None:
    assert host_state_of(iso_lab.lab.name) == iso_lab.before


def test_up_after_a_killed_up_and_down_leave_nothing() -> None:
    """`up` SIGKILLed half-way, then `up` again: a whole, isolated lab; `down` removes all."""
    name = unique_lab_name("iso-kill")
    before = host_state_of(name)
    try:
        kill_up_half_way(name)
        assert not lab_footprint(name).empty
        result = labctl("up", str(SEED), "--name", name)
        assert "leftovers" in result.stderr or "incomplete" in result.stderr, result.stderr
        containers = docker.from_env().containers.list(filters={"label": f"labctl.lab={name}"})
        assert {c.labels["labctl.node"] for c in containers} == SEED_NODES
        ports = in_fabric(name, "ip", "-j", "link", "show", "master", "mgmt")
        assert sorted(p["ifalias"] for p in ports) == sorted(f"{n}:eth0" for n in SEED_NODES)
        for node in SEED_NODES:
            assert labctl("exec", "--lab", name, node, "--", "hostname").stdout.strip() == node
    finally:
        labctl("down", name, check=False)
    footprint = lab_footprint(name)
    assert footprint.empty, footprint
    assert host_state_of(name) == before


def test_down_leaves_nothing_of_the_lab(iso_lab: IsolationLab) -> None:
    labctl("down", iso_lab.lab.name)
    footprint = lab_footprint(iso_lab.lab.name)
    assert footprint.empty, footprint
    assert host_state_of(iso_lab.lab.name) == iso_lab.before


def test_down_removes_a_management_network_an_older_labctl_left() -> None:
    """Labs made before the management plane moved into the fabric had a Docker network;
    `down` still finds it by its labels (and touches no network of another lab)."""
    client = docker.from_env()
    name, other = unique_lab_name("iso-old"), unique_lab_name("iso-other")
    networks = [
        client.networks.create(
            f"labctl-{lab}-mgmt",
            driver="bridge",
            internal=True,
            labels={"labctl.lab": lab, "labctl.role": "mgmt"},
        )
        for lab in (name, other)
    ]
    try:
        result = labctl("down", name)
        assert f"network labctl-{name}-mgmt" in result.stderr, result.stderr
        assert client.networks.list(filters={"label": f"labctl.lab={name}"}) == []
        assert [n.name for n in client.networks.list(filters={"label": f"labctl.lab={other}"})] == [
            f"labctl-{other}-mgmt"
        ]
    finally:
        for network in networks:
            with contextlib.suppress(docker.errors.NotFound):
                network.remove()
