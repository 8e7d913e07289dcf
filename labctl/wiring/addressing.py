"""Inside each node: lab interfaces up with their addresses, the lab's routes only."""

from __future__ import annotations

from ipaddress import IPv4Interface

from ..topology import Lab
from .mgmt import configure_mgmt_interface
from .netns import ensure_address, open_netns, pid_netns_path


def interface_macs(lab: Lab, node_name: str, pid: int) -> dict[str, str]:
    """The MAC address of each of the node's lab interfaces that exists now."""
    macs = {}
    with open_netns(pid_netns_path(pid)) as ns:
        for if_name, _, _ in lab.interfaces_of(node_name):
            for link in ns.get_links(*ns.link_lookup(ifname=if_name)):
                macs[if_name] = link.get_attr("IFLA_ADDRESS")
    return macs


def configure_node(
    lab: Lab,
    node_name: str,
    pid: int,
    macs: dict[str, str] | None = None,
    mgmt: IPv4Interface | None = None,
) -> None:
    """Apply the lab interfaces' settings and addresses, and the node's routes.

    `mgmt`: the address of the node's management eth0 (attach_nodes made it), which gets
    just its connected route. `macs` gives interfaces without a configured MAC one (a
    restarted node keeps its old ones, as a rebooted device keeps its hardware addresses,
    so its neighbours' ARP entries stay right).
    """
    node = lab.node(node_name)
    with open_netns(pid_netns_path(pid)) as ns:
        if mgmt is not None:
            configure_mgmt_interface(ns, mgmt)
        for if_name, address, segment in lab.interfaces_of(node_name):
            index = ns.link_lookup(ifname=if_name)[0]
            config = node.interfaces.get(if_name)
            settings: dict = {"state": "up"}
            if config is not None and config.mac:
                settings["address"] = config.mac
            elif macs and if_name in macs:
                settings["address"] = macs[if_name]
            mtu = (config.mtu if config else None) or segment.link.mtu
            if mtu:
                settings["mtu"] = mtu
            ns.link("set", index=index, **settings)
            if address is not None:
                ensure_address(ns, index, address)
        for route in node.routes:
            ns.route("replace", dst=str(route.dst), gateway=str(route.via))
