"""The `concentrator` running our agent (labctl/agent/concentrator.py)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..collect import run
from ..spec import Implementation, NodeConfig, RenderedFile, ShowTable
from ..vpn_agent import AGENT_SHOWS, agent_node_config, settings_json
from .model import ConcentratorNode, parse_pool

if TYPE_CHECKING:
    from ...topology.lab import Lab


def render(lab: Lab, name: str) -> NodeConfig:
    node = lab.node(name)
    assert isinstance(node, ConcentratorNode)
    settings = settings_json(node.vpn)
    for group_name, group in node.vpn.groups.items():
        first, last = parse_pool(group.pool)
        settings["groups"][group_name]["pool_range"] = [str(first), str(last)]
    agent = agent_node_config(lab, name, settings)
    fragments = RenderedFile(
        FRAGMENT_NFT_PATH,
        fragment_rules(name, node).encode(),
        check="nft -c -f {path}",
    )
    # the rules first: the agent's TUN MTU and these rules make one policy
    return NodeConfig(
        name,
        (fragments, *agent.files),
        (f"nft -f {FRAGMENT_NFT_PATH}", *agent.reload_commands),
        agent.host_sysctls,
    )


FRAGMENT_NFT_PATH = "/etc/labctl/fragmentation.nft"
FRAGMENT_TABLE = "labctl_fragmentation"


def fragment_rules(name: str, node: ConcentratorNode) -> str:
    """The Fragmentation Policy's kernel half: 'clear-df' clears DF on what arrives from
    anywhere but the public side and the tunnels, in prerouting -- before routing, where the
    kernel refuses (ICMP) a DF packet too big for the TUN. The agent sets the TUN MTU."""
    lines = [
        f"# Rendered by labctl for {name}: Fragmentation Policy {node.vpn.fragmentation_policy}",
        f"table ip {FRAGMENT_TABLE} {{}}",
        f"delete table ip {FRAGMENT_TABLE}",
        f"table ip {FRAGMENT_TABLE} {{",
    ]
    if node.vpn.fragmentation_policy == "clear-df":
        public = json.dumps(node.vpn.public_interface)
        lines += [
            "\tchain clear_df {",
            "\t\ttype filter hook prerouting priority -150; policy accept;",
            f'\t\tiifname != {{ {public}, "vpn0" }} ip frag-off 0x4000 counter '
            'ip frag-off set 0 comment "DF cleared"',
            "\t}",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def collect_sessions(handle: Any, node: str, verbose: bool = False) -> tuple[Any, str]:
    from ...state.records_common import annotate

    detail = " -v" if verbose else ""
    records = json.loads(run(handle, node, "vpn show sessions --json"))
    # the same shape as the other implementations' records (our agent reports every field)
    sessions = [annotate(r, "ours", (), "agent") for r in records["sessions"]]
    return sessions, run(handle, node, f"vpn show sessions{detail}")


def collect_lan_to_lan(handle: Any, node: str, verbose: bool = False) -> tuple[Any, str]:
    """LAN-to-LAN sessions (records with their IKE and IPsec SAs); the text is the whole
    Administer Sessions screen, whose LAN-to-LAN table comes first."""
    records = json.loads(run(handle, node, "vpn show sessions --json"))
    return records.get("lan_to_lan", []), run(
        handle, node, "vpn show sessions" + (" -v" if verbose else "")
    )


def collect_fragmentation(handle: Any, node: str, verbose: bool = False) -> tuple[Any, str]:
    """The Fragmentation Policy's rule counters (clear-df: packets whose DF was cleared)."""
    from ..pat_firewall.nftables import nft_counters

    # what the node runs (a scenario may have pushed another policy than the file says)
    policy = run(handle, node, f"head -n 1 {FRAGMENT_NFT_PATH}").rsplit(" ", 1)[-1].strip()
    rows = nft_counters(
        json.loads(run(handle, node, f"nft -j list table ip {FRAGMENT_TABLE}")), FRAGMENT_TABLE
    )
    lines = [f"Fragmentation Policy: {policy}", f"{'PACKETS':>9} {'BYTES':>11}  RULE"]
    lines += [f"{r['packets']:>9} {r['bytes']:>11}  {r['comment'] or '-'}" for r in rows]
    return rows, "\n".join(lines) + "\n"


def collect_administer(handle: Any, node: str, verbose: bool = False) -> tuple[Any, str]:
    """The whole Administer Sessions screen: summary, remote-access sessions and the
    management sessions (the web console's own)."""
    records = json.loads(run(handle, node, "vpn show sessions --json"))
    records.setdefault("management", [])  # an agent from before management sessions
    records.setdefault("lan_to_lan", [])  # an agent from before LAN-to-LAN
    return records, run(handle, node, "vpn show sessions" + (" -v" if verbose else ""))


OURS = Implementation(
    "ours",
    image_role="vpn",
    render=render,
    shows=(
        ShowTable(
            "sessions",
            "VPN sessions (VPN 3000 'Administer Sessions'; -v: IKE/IPsec SAs)",
            collect_sessions,
        ),
        ShowTable(
            "lan-to-lan",
            "LAN-to-LAN sessions (-v: IKE/IPsec SAs, NAT-T, UDP ports, bytes)",
            collect_lan_to_lan,
        ),
        ShowTable(
            "fragmentation",
            "the public interface's Fragmentation Policy and its rule counters (clear-df)",
            collect_fragmentation,
        ),
        ShowTable(
            "administer",
            "VPN 3000 'Administer Sessions': summary, LAN-to-LAN, remote access and "
            "management sessions",
            collect_administer,
        ),
        *AGENT_SHOWS,
    ),
)
