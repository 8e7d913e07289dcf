"""The management plane's wiring against the real kernel, with plain processes as nodes.

Each "node" is a process in a network namespace of its own (`unshare --net`), wired by the
same functions `labctl up` uses. labctl's side connects from inside the lab's fabric
namespace (socket_in_netns); a node must reach neither another node nor anything beyond
the bridge, even after adding routes.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Interface

import pytest

from labctl.topology import Lab, load_lab_text
from labctl.wiring import (
    MgmtPort,
    attach_nodes,
    configure_node,
    connect_endpoints,
    create_fabric,
    create_mgmt_bridge,
    disconnect_node,
    mgmt_netns_path,
    pid_netns_path,
    plan_mgmt,
    remove_fabric,
    socket_in_netns,
)
from labctl.wiring.netns import open_netns

pytestmark = pytest.mark.integration
PORT = 2222


def _thread_netns() -> str:
    return os.readlink("/proc/thread-self/ns/net")


def _outcome(sock: socket.socket, address: str, port: int = PORT, timeout: float = 1.0) -> str:
    """How a TCP connect ends. A lost first ARP or SYN is retried after 1 s, so a connection
    expected to succeed gets longer (on a loaded CI machine one was lost); one expected to
    time out keeps the short wait."""
    sock.settimeout(timeout)
    try:
        sock.connect((address, port))
        return "ok"
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc))
    finally:
        sock.close()


@pytest.fixture
def named_netns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.fail("needs root (network namespaces)")
    name = f"isons{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    try:
        yield f"/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_a_socket_made_in_a_namespace_stays_there_and_the_caller_does_not_move(
    named_netns: str,
) -> None:
    before, threads = _thread_netns(), threading.active_count()
    # A port bound but not listening in the caller's own namespace (taken from the host's
    # free ports first: the host is busy, the new namespace is empty), and the same port
    # listening in the namespace: a connection made here is refused, one made there accepted.
    local = socket.socket()
    local.bind(("127.0.0.1", 0))
    port = local.getsockname()[1]
    listener = socket_in_netns(named_netns)
    listener.bind(("127.0.0.1", port))
    listener.listen(1)
    try:
        assert _reaches(socket_in_netns(named_netns), "127.0.0.1", port) == "ok"
        assert _outcome(socket.socket(), "127.0.0.1", port) == "ECONNREFUSED"
    finally:
        local.close()
        listener.close()
    assert _thread_netns() == before
    assert threading.active_count() == threads  # the helper thread is gone, not pooled


def test_a_missing_namespace_is_an_error_not_the_callers_namespace() -> None:
    with pytest.raises(FileNotFoundError):
        socket_in_netns("/run/netns/labctl-no-such-lab-here")


@dataclass
class FakeLab:
    lab: Lab
    nodes: dict[str, subprocess.Popen]

    @property
    def name(self) -> str:
        return self.lab.name

    def node_path(self, node: str) -> str:
        return pid_netns_path(self.nodes[node].pid)

    def in_node(self, node: str, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["nsenter", "-t", str(self.nodes[node].pid), "-n", *argv],
            capture_output=True,
            text=True,
            check=False,
        )


def _spawn_node() -> subprocess.Popen:
    process = subprocess.Popen(["unshare", "--net", "sleep", "300"])
    # Wait until the process is in its own namespace.
    for _ in range(200):
        if os.readlink(pid_netns_path(process.pid)) != os.readlink("/proc/self/ns/net"):
            return process
        threading.Event().wait(0.01)
    raise AssertionError("unshare did not make a namespace")


@pytest.fixture
def fake_lab() -> Iterator[FakeLab]:
    if os.geteuid() != 0:
        pytest.fail("needs root (network namespaces)")
    name = f"iso-it-{secrets.token_hex(3)}"
    lab = load_lab_text(
        f"name: {name}\ntopology:\n  nodes:\n"
        "    a: {kind: host, interfaces: {eth1: 10.0.0.1/24}}\n"
        "    b: {kind: host, interfaces: {eth1: 10.0.0.2/24}}\n"
        "  links:\n    - endpoints: [a:eth1, b:eth1]\n"
    )
    nodes = {"a": _spawn_node(), "b": _spawn_node()}
    fake = FakeLab(lab, nodes)
    try:
        # What `labctl up` does once the nodes' processes exist.
        create_fabric(lab)
        plan = plan_mgmt(lab)
        create_mgmt_bridge(name, plan)
        pids = {node: process.pid for node, process in nodes.items()}
        connect_endpoints(lab, pids)
        attach_nodes(name, plan.attachments(pids))
        for node, pid in pids.items():
            configure_node(lab, node, pid, mgmt=plan.nodes[node])
        yield fake
    finally:
        for process in fake.nodes.values():
            process.kill()
            process.wait()
        remove_fabric(name)


def _reaches(sock: socket.socket, address: str, port: int = PORT) -> str:
    return _outcome(sock, address, port, timeout=6.0)


def _listen_in(path: str) -> socket.socket:
    listener = socket_in_netns(path)
    listener.bind(("0.0.0.0", PORT))
    listener.listen(8)
    return listener


def _refused_counter(lab: str) -> int:
    out = subprocess.run(
        ["ip", "netns", "exec", f"labctl-{lab}", "nft", "-j", "list", "counters"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    counters = [i["counter"] for i in json.loads(out)["nftables"] if "counter" in i]
    return next(c["packets"] for c in counters if c["name"] == "mgmt_refused")


def test_labctl_reaches_each_node_and_nodes_reach_nothing(fake_lab: FakeLab) -> None:
    fabric = mgmt_netns_path(fake_lab.name)
    listeners = [_listen_in(fake_lab.node_path(n)) for n in ("a", "b")]
    try:
        # labctl's side, from the fabric: both nodes answer.
        assert _reaches(socket_in_netns(fabric), "172.30.0.2") == "ok"
        assert _reaches(socket_in_netns(fabric), "172.30.0.3") == "ok"
        refused = _refused_counter(fake_lab.name)
        # b -> a on the management subnet: isolated ports, the frames go nowhere.
        b = fake_lab.node_path("b")
        assert _outcome(socket_in_netns(b), "172.30.0.2") == "timeout"
        assert fake_lab.in_node("b", "ping", "-c", "1", "-W", "1", "172.30.0.2").returncode != 0
        # b -> the bridge's own address: dropped, not even refused.
        assert _outcome(socket_in_netns(b), "172.30.0.1") == "timeout"
        # b routes a and an outside address via the bridge, as its root user could.
        for dst in ("172.30.0.2/32", "198.51.100.7/32"):
            added = fake_lab.in_node("b", "ip", "route", "add", dst, "via", "172.30.0.1")
            assert added.returncode == 0, added.stderr
        assert _outcome(socket_in_netns(b), "172.30.0.2") == "timeout"
        assert _outcome(socket_in_netns(b), "198.51.100.7") == "timeout"
        # Everything b sent to the bridge's address was counted and dropped there.
        assert _refused_counter(fake_lab.name) - refused >= 3
        # labctl's own connections still work.
        assert _reaches(socket_in_netns(fabric), "172.30.0.3") == "ok"
    finally:
        for listener in listeners:
            listener.close()


def test_a_node_that_comes_back_in_a_new_namespace_is_reattached(fake_lab: FakeLab) -> None:
    """What a node restart does: the old namespace dies, a new eth0 gets the same address."""
    old = fake_lab.nodes["a"]
    old.kill()
    old.wait()
    fake_lab.nodes["a"] = _spawn_node()
    pid, address = fake_lab.nodes["a"].pid, IPv4Interface("172.30.0.2/24")
    attach_nodes(fake_lab.name, [MgmtPort("a", "m0", pid, address)])
    disconnect_node(fake_lab.lab, "a")
    connect_endpoints(fake_lab.lab, {n: p.pid for n, p in fake_lab.nodes.items()})
    configure_node(fake_lab.lab, "a", pid, mgmt=address)
    ports = subprocess.run(
        ["ip", "-n", f"labctl-{fake_lab.name}", "-j", "-d", "link", "show", "master", "mgmt"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    by_alias = {p["ifalias"]: p for p in json.loads(ports)}
    assert sorted(by_alias) == ["a:eth0", "b:eth0"]
    assert by_alias["a:eth0"]["linkinfo"]["info_slave_data"]["isolated"] is True
    listener = _listen_in(fake_lab.node_path("a"))
    try:
        assert _reaches(socket_in_netns(mgmt_netns_path(fake_lab.name)), "172.30.0.2") == "ok"
    finally:
        listener.close()


def _mac(path: str) -> bytes:
    with open_netns(path) as ns:
        link = ns.get_links(ns.link_lookup(ifname="eth0")[0])[0]
        return bytes.fromhex(link.get_attr("IFLA_ADDRESS").replace(":", ""))


def _forged_arp(src_mac: bytes, sender_mac: bytes, claimed_ip: str) -> bytes:
    """An ARP reply saying `claimed_ip` is at `sender_mac`, sent from `src_mac`."""
    ip = socket.inet_aton(claimed_ip)
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, sender_mac, ip, b"\xff" * 6, ip)
    return b"\xff" * 6 + src_mac + struct.pack("!H", 0x0806) + arp


def _accepted(listener: socket.socket) -> bool:
    listener.settimeout(0.5)
    try:
        conn, _ = listener.accept()
    except TimeoutError:
        return False
    conn.close()
    return True


def test_a_node_cannot_draw_another_nodes_management_traffic(fake_lab: FakeLab) -> None:
    """b takes a's address, answers ARP for it and sends frames from a's MAC: labctl's
    connections to a's address still reach a, never b."""
    fabric = mgmt_netns_path(fake_lab.name)
    a, b = fake_lab.node_path("a"), fake_lab.node_path("b")
    listener_a, listener_b = _listen_in(a), _listen_in(b)
    try:
        assert _reaches(socket_in_netns(fabric), "172.30.0.2") == "ok"  # fabric knows a
        assert _accepted(listener_a)
        taken = fake_lab.in_node("b", "ip", "addr", "add", "172.30.0.2/32", "dev", "eth0")
        assert taken.returncode == 0, taken.stderr
        raw = socket_in_netns(b, socket.AF_PACKET, socket.SOCK_RAW)
        try:
            raw.bind(("eth0", 0))
            mac_a, mac_b = _mac(a), _mac(b)
            for _ in range(3):
                raw.send(_forged_arp(mac_b, mac_b, "172.30.0.2"))  # ARP: .2 is at b
                raw.send(_forged_arp(mac_a, mac_b, "172.30.0.2"))  # ... from a's MAC
                threading.Event().wait(0.4)  # past the neighbour table's locktime
        finally:
            raw.close()
        for _ in range(3):
            assert _reaches(socket_in_netns(fabric), "172.30.0.2") == "ok"
        assert _accepted(listener_a) and not _accepted(listener_b)
        neigh = subprocess.run(
            ["ip", "-n", f"labctl-{fake_lab.name}", "-j", "neigh", "show", "172.30.0.2"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert json.loads(neigh)[0]["lladdr"] == mac_a.hex(":")
    finally:
        listener_a.close()
        listener_b.close()
