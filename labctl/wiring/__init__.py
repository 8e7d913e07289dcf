"""Wiring a lab: fabric namespace, segment bridges, veths, addresses, routes (netlink)."""

from .addressing import configure_node
from .fabric import (
    FabricPort,
    WiringError,
    connect_endpoints,
    create_fabric,
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
    "fabric_ports",
    "list_named_netns",
    "pid_netns_path",
    "remove_fabric",
    "run_in_netns",
    "write_sysctls",
]
