"""The `vpn-client` running our agent (labctl/agent/client.py)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..collect import run
from ..spec import ClientCommands, Implementation, NodeConfig, ShowTable
from ..vpn_agent import AGENT_SHOWS, agent_node_config, settings_json
from .model import VpnClientNode

if TYPE_CHECKING:
    from ...topology.lab import Lab


def render(lab: Lab, name: str) -> NodeConfig:
    node = lab.node(name)
    assert isinstance(node, VpnClientNode)
    return agent_node_config(lab, name, settings_json(node.vpn))


def collect_status(handle: Any, node: str, verbose: bool = False) -> tuple[Any, str]:
    from ...state.records_common import annotate

    # the same shape as the other implementations' records (our agent reports every field)
    record = annotate(json.loads(run(handle, node, "vpn status --json")), "ours", (), "agent")
    return record, run(handle, node, "vpn status")


OURS = Implementation(
    "ours",
    image_role="vpn",
    render=render,
    shows=(
        ShowTable("status", "VPN client status and statistics", collect_status),
        *AGENT_SHOWS,
    ),
    client=ClientCommands(
        connect="vpn connect --wait --timeout 60",
        connect_timeout=75,
        disconnect="vpn disconnect",
        disconnect_timeout=30,
    ),
)
