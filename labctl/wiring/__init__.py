"""Wiring a lab: fabric netns, segment bridges, veths, addresses, routes (netlink)."""

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
from .mgmt import (
    MgmtPlan,
    MgmtPlanError,
    MgmtPort,
    attach_nodes,
    create_mgmt_bridge,
    mgmt_netns_path,
    plan_mgmt,
)
from .netns import (
    list_named_netns,
    pid_netns_path,
    run_in_netns,
    socket_in_netns,
    write_sysctls,
)

__all__ = [
    "FabricPort",
    "MgmtPlan",
    "MgmtPlanError",
    "MgmtPort",
    "WiringError",
    "attach_nodes",
    "configure_node",
    "connect_endpoints",
    "create_fabric",
    "create_mgmt_bridge",
    "disconnect_node",
    "fabric_ports",
    "interface_macs",
    "list_named_netns",
    "mgmt_netns_path",
    "pid_netns_path",
    "plan_mgmt",
    "remove_fabric",
    "run_in_netns",
    "socket_in_netns",
    "write_sysctls",
]
