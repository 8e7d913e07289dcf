"""The management plane: a bridge in the lab's own fabric namespace, one veth per node.

Nodes start with no network at all (Docker `--network none`). A node's `eth0` is a veth
whose other end is a port of the `mgmt` bridge in the lab's fabric namespace; the bridge
carries labctl's address on the management subnet, and labctl opens its SSH sockets inside
that namespace (`socket_in_netns`). Nothing of the management plane exists on the host, so:

- node to node: every node port is `isolated` (a bridge port flag): the bridge never
  forwards a frame from one node port to another;
- node to host: the fabric namespace has no link to the host at all, does not route
  (ip_forward 0), and its nftables table drops whatever a node starts towards it: only
  the replies to labctl's own connections pass. A route a node adds leads nowhere.

The management subnet is private to the lab's namespace, so it only has to avoid the lab's
own networks (a node has its lab interfaces and eth0 side by side), never the host's.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import subprocess
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv4Network

from pyroute2 import IPRoute

from ..errors import LabctlError
from ..kinds.registry import spec_of
from ..naming import MGMT_BRIDGE, fabric_netns, mgmt_port_alias, mgmt_port_name
from ..topology import Lab
from .fabric import ensure_bridge
from .netns import ensure_address, named_netns_path, open_netns, run_in_netns

MGMT_INTERFACE = "eth0"  # the name every node sees (reserved in topologies)
# Tried in order for a lab that names no subnet; the first that overlaps none of the lab's
# own networks wins. The same lab gets the same addresses every time.
_CANDIDATE_BLOCKS = (IPv4Network("172.30.0.0/16"), IPv4Network("10.254.0.0/16"))
# What the fabric namespace accepts from the management bridge: replies to labctl's own
# connections. Everything else a node sends towards it is counted and dropped before
# routing, so it neither reaches a socket nor draws an ICMP error.
_FIREWALL = f"""\
table inet labctl_mgmt {{}}
delete table inet labctl_mgmt
table inet labctl_mgmt {{
  counter mgmt_refused {{}}
  chain prerouting {{
    type filter hook prerouting priority filter; policy accept;
    iifname != "{MGMT_BRIDGE}" accept
    ct state established,related accept
    counter name mgmt_refused drop
  }}
  chain input {{
    type filter hook input priority filter; policy drop;
    iifname "lo" accept
    ct state established,related accept
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    iifname "{MGMT_BRIDGE}" drop
    oifname "{MGMT_BRIDGE}" drop
  }}
}}
"""


# Netlink constants (linux/neighbour.h): a bridge FDB entry of the port's own ("master",
# "static" in `bridge fdb`), and a neighbour entry ARP never changes.
_NTF_MASTER = 0x04
_NUD_NOARP = 0x40
_NUD_PERMANENT = 0x80


class MgmtPlanError(LabctlError, ValueError):
    """The lab's management subnet cannot hold its nodes, or no default one is free."""


@dataclass(frozen=True)
class MgmtPlan:
    """Who gets which management address, and the fabric port each node's eth0 pairs with."""

    subnet: IPv4Network
    bridge: IPv4Interface  # labctl's side: the address of the fabric's mgmt bridge
    nodes: dict[str, IPv4Interface]
    ports: dict[str, str]

    def attachments(self, pids: dict[str, int]) -> list[MgmtPort]:
        """What attach_nodes needs for the nodes (by name) running as these processes."""
        return [MgmtPort(n, self.ports[n], pid, self.nodes[n]) for n, pid in pids.items()]


def plan_mgmt(lab: Lab) -> MgmtPlan:
    """The bridge takes the subnet's first host address, the nodes the next ones in order."""
    wanted = lab.spec.mgmt.ipv4_subnet
    subnet = wanted or _free_subnet(lab)
    clash = [n for n in lab_networks(lab) if n.overlaps(subnet)]
    if clash:  # a node would have two routes to those addresses
        raise MgmtPlanError(f"mgmt.ipv4-subnet {subnet} overlaps the lab's network {clash[0]}")
    if _usable(subnet) < len(lab.nodes) + 1:
        raise MgmtPlanError(
            f"mgmt.ipv4-subnet {subnet} has room for {max(_usable(subnet) - 1, 0)} nodes "
            f"besides labctl's own address; the lab has {len(lab.nodes)}"
        )
    hosts = subnet.hosts()
    bridge = IPv4Interface(f"{next(hosts)}/{subnet.prefixlen}")
    nodes = {name: IPv4Interface(f"{next(hosts)}/{subnet.prefixlen}") for name in lab.nodes}
    ports = {name: mgmt_port_name(index) for index, name in enumerate(lab.nodes)}
    return MgmtPlan(subnet, bridge, nodes, ports)


def lab_networks(lab: Lab) -> list[IPv4Network]:
    """What a management subnet must not overlap: the lab's links, routes and VPN networks."""
    networks = list(lab.subnets().values())
    for node in lab.nodes.values():
        networks.extend(i.ipv4.network for i in node.interfaces.values() if i.ipv4 is not None)
        networks.extend(route.dst for route in node.routes if route.dst.prefixlen > 0)
        claimed = spec_of(node.kind).networks
        if claimed is not None:
            networks.extend(claimed(node))
    return networks


def _usable(subnet: IPv4Network) -> int:
    return subnet.num_addresses - 2 if subnet.prefixlen < 31 else subnet.num_addresses


def _free_subnet(lab: Lab) -> IPv4Network:
    # A /24 unless the lab needs more: the nodes plus labctl's address, network, broadcast.
    prefix = min(24, 32 - math.ceil(math.log2(len(lab.nodes) + 3)))
    taken = lab_networks(lab)
    for block in _CANDIDATE_BLOCKS:
        for subnet in block.subnets(new_prefix=prefix):
            if not any(subnet.overlaps(t) for t in taken):
                return subnet
    raise MgmtPlanError(
        "no free management subnet: the lab's own networks cover 172.30.0.0/16 and "
        "10.254.0.0/16; set mgmt: {ipv4-subnet: ...} to one they do not overlap"
    )


def mgmt_netns_path(lab_name: str) -> str:
    """Where labctl's management sockets live: the lab's fabric namespace."""
    return named_netns_path(fabric_netns(lab_name))


def create_mgmt_bridge(lab_name: str, plan: MgmtPlan) -> None:
    """The management bridge with labctl's address, and the fabric's firewall for it.

    The fabric namespace must exist (create_fabric makes it, ip_forward 0)."""
    path = mgmt_netns_path(lab_name)
    with open_netns(path) as fabric:
        index = ensure_bridge(fabric, MGMT_BRIDGE, f"{lab_name}:management")
        ensure_address(fabric, index, plan.bridge)
    _load_firewall(path)


def _load_firewall(path: str) -> None:
    def load() -> subprocess.CompletedProcess:
        # A child forked by this thread inherits the namespace it joined.
        return subprocess.run(
            ["nft", "-f", "-"], input=_FIREWALL, capture_output=True, text=True, check=False
        )

    result = run_in_netns(path, load)
    if result.returncode != 0:
        raise MgmtPlanError(f"cannot load the management firewall: {result.stderr.strip()}")


@dataclass(frozen=True)
class MgmtPort:
    """One node's management link: the fabric port name and the node's process/address."""

    node: str
    port: str
    pid: int
    address: IPv4Interface


def attach_nodes(lab_name: str, ports: list[MgmtPort]) -> None:
    """Give each node (by its process) an eth0 on the management bridge, isolated.

    The bridge knows a node only by what labctl made: its port does not learn addresses
    and floods no unknown unicast, the MAC labctl gave the node's eth0 is a static entry
    on that port and its address a permanent neighbour of the bridge. So another node that
    forges the MAC or answers ARP for the address does not draw labctl's traffic to itself.
    A port left from a node's previous namespace (a restart) is deleted first: the kernel
    removes a dead namespace's veths asynchronously. The node's side is brought up with its
    address by configure_node (one visit per node)."""
    with open_netns(mgmt_netns_path(lab_name)) as fabric:
        stale = {mgmt_port_alias(p.node) for p in ports}
        for link in fabric.get_links():
            if link.get_attr("IFLA_IFALIAS") in stale:
                with contextlib.suppress(Exception):  # vanished meanwhile: also fine
                    fabric.link("del", index=link["index"])
        bridge = fabric.link_lookup(ifname=MGMT_BRIDGE)[0]
        for port in ports:
            mac = _new_mac()
            fabric.link(
                "add",
                ifname=port.port,
                kind="veth",
                peer={"ifname": MGMT_INTERFACE, "net_ns_pid": port.pid, "address": mac},
            )
            index = fabric.link_lookup(ifname=port.port)[0]
            fabric.link("set", index=index, master=bridge, ifalias=mgmt_port_alias(port.node))
            # Isolated before the port comes up: no frame of the node ever reaches another.
            fabric.brport("set", index=index, isolated=1, learning=0, unicast_flood=0)
            fabric.fdb("add", ifindex=index, lladdr=mac, flags=_NTF_MASTER, state=_NUD_NOARP)
            fabric.neigh(
                "replace",
                dst=str(port.address.ip),
                lladdr=mac,
                ifindex=bridge,
                state=_NUD_PERMANENT,
            )
            fabric.link("set", index=index, state="up")


def configure_mgmt_interface(node_ns: IPRoute, address: IPv4Interface) -> None:
    """Inside the node: its eth0 up with its management address (and only the connected
    route that comes with it: no gateway, no default)."""
    index = node_ns.link_lookup(ifname=MGMT_INTERFACE)[0]
    ensure_address(node_ns, index, address)
    node_ns.link("set", index=index, state="up")


def _new_mac() -> str:
    """A random unicast, locally administered MAC."""
    octets = bytearray(secrets.token_bytes(6))
    octets[0] = (octets[0] & 0xFC) | 0x02
    return ":".join(f"{o:02x}" for o in octets)
