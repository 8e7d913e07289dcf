"""The `vpn-site` running our agent (labctl/agent/site.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..spec import ClientCommands, Implementation, NodeConfig, ShowTable
from ..vpn_agent import AGENT_SHOWS, agent_node_config, settings_json
from ..vpn_client.ours import collect_status
from .model import VpnSiteNode

if TYPE_CHECKING:
    from ...topology.lab import Lab


def render(lab: Lab, name: str) -> NodeConfig:
    node = lab.node(name)
    assert isinstance(node, VpnSiteNode)
    return agent_node_config(lab, name, settings_json(node.vpn))


OURS = Implementation(
    "ours",
    image_role="vpn",
    render=render,
    shows=(
        ShowTable("status", "LAN-to-LAN tunnel status and statistics", collect_status),
        *AGENT_SHOWS,
    ),
    client=ClientCommands(
        connect="vpn connect --wait --timeout 60",
        connect_timeout=75,
        disconnect="vpn disconnect",
        disconnect_timeout=30,
    ),
)
