"""A node's configuration, rendered in memory from the lab model by its kind.

Every node gets /etc/labctl/node.json (lab, node, kind); the rest is its kind's
implementation's (`labctl.kinds`: the PAT's nftables ruleset, the agents' vpn.json).
Nothing rendered is written on the host: files travel over the management plane into
the node (secret-bearing ones with mode 0600), so secrets never land in a host file.
"""

from __future__ import annotations

import json
from dataclasses import replace

from ..kinds.registry import implementation_of
from ..kinds.spec import NodeConfig, RenderedFile
from ..kinds.vpn_agent import VPN_CONFIG_PATH
from ..topology import Lab

CONFIG_DIR = "/etc/labctl"

__all__ = [
    "CONFIG_DIR",
    "VPN_CONFIG_PATH",
    "NodeConfig",
    "RenderedFile",
    "render_node",
    "vpn_agent_config",
]


def render_node(lab: Lab, node_name: str) -> NodeConfig:
    node = lab.node(node_name)
    description = RenderedFile(
        f"{CONFIG_DIR}/node.json",
        (
            json.dumps({"lab": lab.name, "node": node_name, "kind": node.kind}, indent=2) + "\n"
        ).encode(),
    )
    render = implementation_of(node).render
    if render is None:
        return NodeConfig(node_name, (description,))
    config = render(lab, node_name)
    return replace(config, files=(description, *config.files))


def vpn_agent_config(lab: Lab, name: str) -> dict:
    """The VPN agent's configuration of a node as rendered (its /etc/labctl/vpn.json)."""
    for rendered in render_node(lab, name).files:
        if rendered.path == VPN_CONFIG_PATH:
            return json.loads(rendered.content)
    raise ValueError(f"{name} ({lab.node(name).kind}) runs no VPN agent of ours")
