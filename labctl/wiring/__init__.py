"""Wiring a lab: fabric namespace, segment bridges, veths, addresses, routes (netlink)."""

from .addressing import configure_node, interface_macs
from .fabric import (
    FabricPort,
    WiringError,
    connect_endpoints,
    create_fabric,
    disconnect_node,
    fabric_ports,
    remove_fabric,
)
from .netns import list_named_netns, pid_netns_path, run_in_netns, write_sysctls

__all__ = [
    "FabricPort",
    "WiringError",
    "configure_node",
    "connect_endpoints",
    "create_fabric",
    "disconnect_node",
    "fabric_ports",
    "interface_macs",
    "list_named_netns",
    "pid_netns_path",
    "remove_fabric",
    "run_in_netns",
    "write_sysctls",
]
