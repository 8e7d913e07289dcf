"""The lab's fabric: one private namespace holding a bridge per link, a veth per endpoint.

Every link, point-to-point or LAN, is a bridge here. That gives one uniform place to
capture a segment's traffic and to shape it, and the node side of each veth is created
directly inside the node's namespace under its final name, so no lab interface ever
exists in the host's namespace.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from pyroute2 import IPRoute

from ..errors import LabctlError
from ..naming import bridge_name, fabric_netns, fabric_port_name
from ..topology import Lab
from .netns import (
    create_named_netns,
    named_netns_path,
    open_netns,
    remove_named_netns,
    write_sysctls,
)

# In the fabric, bridged frames must not be handed to netfilter (br_netfilter is loaded
# on the host for Docker), and nothing may ever be routed.
_FABRIC_SYSCTLS = {
    "net.ipv4.ip_forward": "0",
    "net.ipv6.conf.all.disable_ipv6": "1",
    "net.ipv6.conf.default.disable_ipv6": "1",
}
_BRIDGE_NF_SYSCTLS = {
    "net.bridge.bridge-nf-call-iptables": "0",
    "net.bridge.bridge-nf-call-ip6tables": "0",
    "net.bridge.bridge-nf-call-arptables": "0",
}


class WiringError(LabctlError):
    """Links, bridges or addresses could not be set up; the message names them."""


@dataclass(frozen=True)
class FabricPort:
    segment: str
    bridge: str
    port: str
    node: str
    interface: str


def create_fabric(lab: Lab) -> str:
    """Create the lab's fabric namespace and one bridge per link; return the netns name."""
    name = fabric_netns(lab.name)
    create_named_netns(name)
    path = named_netns_path(name)
    write_sysctls(path, _FABRIC_SYSCTLS)
    with contextlib.suppress(ValueError):  # br_netfilter not loaded: nothing to turn off
        write_sysctls(path, _BRIDGE_NF_SYSCTLS)
    with open_netns(path) as fabric:
        lo = fabric.link_lookup(ifname="lo")[0]
        fabric.link("set", index=lo, state="up")
        for segment in lab.segments:
            ensure_bridge(fabric, bridge_name(segment.index), f"{lab.name}:{segment.name}")
    return name


def ensure_bridge(fabric: IPRoute, name: str, alias: str) -> int:
    """A plain bridge (no STP, no forward delay, no snooping), up; return its index."""
    if not fabric.link_lookup(ifname=name):
        fabric.link(
            "add",
            ifname=name,
            kind="bridge",
            br_stp_state=0,
            br_forward_delay=0,
            br_mcast_snooping=0,
        )
    index = fabric.link_lookup(ifname=name)[0]
    fabric.link("set", index=index, state="up", ifalias=alias)
    return index


def connect_endpoints(lab: Lab, node_pids: dict[str, int]) -> list[FabricPort]:
    """Create a veth per endpoint: fabric side on the bridge, node side in the node."""
    ports = []
    path = named_netns_path(fabric_netns(lab.name))
    with open_netns(path) as fabric:
        for segment in lab.segments:
            bridge_index = fabric.link_lookup(ifname=bridge_name(segment.index))[0]
            for position, endpoint in enumerate(segment.endpoints):
                port = fabric_port_name(segment.index, position)
                pid = node_pids[endpoint.node]
                if not fabric.link_lookup(ifname=port):
                    fabric.link(
                        "add",
                        ifname=port,
                        kind="veth",
                        peer={"ifname": endpoint.interface, "net_ns_pid": pid},
                    )
                index = fabric.link_lookup(ifname=port)[0]
                mtu = segment.link.mtu
                if mtu:
                    fabric.link("set", index=index, mtu=mtu)
                fabric.link(
                    "set",
                    index=index,
                    master=bridge_index,
                    state="up",
                    ifalias=f"{endpoint.node}:{endpoint.interface}",
                )
                ports.append(
                    FabricPort(
                        segment.name,
                        bridge_name(segment.index),
                        port,
                        endpoint.node,
                        endpoint.interface,
                    )
                )
    return ports


def disconnect_node(lab: Lab, node: str) -> list[str]:
    """Delete the fabric side of a node's veths; return the ports deleted.

    When a node's namespace goes away (a container restart), the kernel deletes its veths
    asynchronously: the fabric ends may still exist for a moment, and connect_endpoints
    would take them for the node's live links and skip creating new ones. Deleting them
    first makes a reconnect deterministic (deleting one end of a veth deletes both)."""
    deleted = []
    with open_netns(named_netns_path(fabric_netns(lab.name))) as fabric:
        for segment in lab.segments:
            for position, endpoint in enumerate(segment.endpoints):
                if endpoint.node != node:
                    continue
                port = fabric_port_name(segment.index, position)
                for index in fabric.link_lookup(ifname=port):
                    with contextlib.suppress(Exception):  # vanished meanwhile: also fine
                        fabric.link("del", index=index)
                    deleted.append(port)
    return deleted


def fabric_ports(lab_name: str) -> list[dict]:
    """What the fabric holds now: bridges and their ports with aliases (for status/down)."""
    path = named_netns_path(fabric_netns(lab_name))
    result = []
    with open_netns(path) as fabric:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in fabric.get_links()}
        for link in fabric.get_links():
            result.append(
                {
                    "name": link.get_attr("IFLA_IFNAME"),
                    "alias": link.get_attr("IFLA_IFALIAS"),
                    "master": names.get(link.get_attr("IFLA_MASTER")),
                    "state": link.get_attr("IFLA_OPERSTATE"),
                }
            )
    return result


def remove_fabric(lab_name: str) -> bool:
    """Delete the fabric namespace; its bridges and veths (and their node ends) go with it."""
    return remove_named_netns(fabric_netns(lab_name))
