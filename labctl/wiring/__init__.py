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
    attach_node,
    create_mgmt_bridge,
    detach_node,
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
    "WiringError",
    "attach_node",
    "configure_node",
    "connect_endpoints",
    "create_fabric",
    "create_mgmt_bridge",
    "detach_node",
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
