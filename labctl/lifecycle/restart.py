"""Restarting one node of a running lab: container, links, addresses, config, SSH pin."""

from __future__ import annotations

import contextlib

from ..runtime import LabRuntimeError
from ..wiring import (
    MgmtPort,
    attach_nodes,
    configure_node,
    connect_endpoints,
    disconnect_node,
    interface_macs,
    plan_mgmt,
)
from .lock import lab_lock
from .push import push_node
from .session import LabHandle


def restart_node(handle: LabHandle, node: str) -> None:
    with lab_lock(handle.lab.name, "labctl restart"):
        _restart_node(handle, node)


def _restart_node(handle: LabHandle, node: str) -> None:
    """The node's namespace is new after a restart, and its veths died with the old one;
    recreate them (its management eth0 too, at the address the node was created with),
    re-address the node, re-pin its host key and push its configuration, which starts its
    services again."""
    handle.drop_session(node)
    macs: dict[str, str] = {}
    with contextlib.suppress(Exception):  # a node that is not running has none to keep
        macs = interface_macs(handle.lab, node, handle.nodes[node].pid)
    info = handle.runtime.restart_node(handle.lab.name, node)
    handle.nodes[node] = info
    disconnect_node(handle.lab, node)  # the old veths may not be gone yet
    connect_endpoints(handle.lab, {name: n.pid for name, n in handle.nodes.items()})
    port = plan_mgmt(handle.lab).ports[node]
    if info.mgmt is None:
        raise LabRuntimeError(f"{node}: restarted without its management address label")
    attach_nodes(handle.lab.name, [MgmtPort(node, port, info.pid, info.mgmt)])
    configure_node(handle.lab, node, info.pid, macs, mgmt=info.mgmt)
    keys = handle.state.host_keys()
    handle.state.pin_host_keys({str(n.mgmt_ipv4): keys[name] for name, n in handle.nodes.items()})
    push_node(handle, node)
