"""Per-kind configuration, rendered in memory from the lab model.

Nothing rendered is written on the host: files travel over the management plane into
the node (secret-bearing ones with mode 0600), so secrets never land in a host file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import jinja2

from ..topology import (
    ConcentratorNode,
    Lab,
    PatFirewallNode,
    VpnClientNode,
    parse_pool,
)

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("labctl.render", "templates"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)

CONFIG_DIR = "/etc/labctl"
NFT_PATH = f"{CONFIG_DIR}/nftables.nft"
VPN_CONFIG_PATH = f"{CONFIG_DIR}/vpn.json"


@dataclass(frozen=True)
class RenderedFile:
    path: str
    content: bytes = field(repr=False)
    mode: int = 0o644
    # Command that validates a staged copy before it replaces the file ({path}: the copy).
    check: str | None = None


@dataclass(frozen=True)
class NodeConfig:
    """What a push installs on a node, and how the node's service picks it up."""

    node: str
    files: tuple[RenderedFile, ...] = ()
    reload_commands: tuple[str, ...] = ()
    host_sysctls: dict[str, str] = field(default_factory=dict)


def render_node(lab: Lab, node_name: str) -> NodeConfig:
    node = lab.node(node_name)
    description = RenderedFile(
        f"{CONFIG_DIR}/node.json",
        (
            json.dumps({"lab": lab.name, "node": node_name, "kind": node.kind}, indent=2) + "\n"
        ).encode(),
    )
    if isinstance(node, PatFirewallNode):
        return _render_pat(lab, node_name, node, description)
    if isinstance(node, ConcentratorNode | VpnClientNode):
        return _render_vpn(lab, node_name, node, description)
    return NodeConfig(node_name, (description,))


def _render_pat(
    lab: Lab, name: str, node: PatFirewallNode, description: RenderedFile
) -> NodeConfig:
    pat = node.pat
    outside_address = node.interfaces[pat.outside].ipv4
    text = _ENV.get_template("pat-firewall.nft.j2").render(
        lab_name=lab.name,
        node_name=name,
        inside=pat.inside,
        outside=pat.outside,
        outside_address=outside_address.ip if outside_address else "?",
        timeouts=pat.timeouts,
        allow_inbound=pat.allow_inbound,
        port_allocation=pat.port_allocation,
    )
    # Per-flow packet/byte counters, so xlate records show what crossed the PAT.
    sysctls = {"net.netfilter.nf_conntrack_acct": "1"}
    if pat.timeouts.icmp:
        sysctls["net.netfilter.nf_conntrack_icmp_timeout"] = str(pat.timeouts.icmp)
    return NodeConfig(
        name,
        (description, RenderedFile(NFT_PATH, text.encode(), check="nft -c -f {path}")),
        (f"nft -f {NFT_PATH}",),
        sysctls,
    )


def _render_vpn(lab: Lab, name: str, node, description: RenderedFile) -> NodeConfig:
    config = vpn_agent_config(lab, name)
    content = (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()
    return NodeConfig(
        name,
        (
            description,
            RenderedFile(VPN_CONFIG_PATH, content, 0o600, check="vpn service check {path}"),
        ),
        # Starts the agent, or applies the new file to the running one.
        ("vpn service reload",),
    )


def vpn_agent_config(lab: Lab, name: str) -> dict:
    """The agent's configuration: the model's VPN section plus the node's addressing."""
    node = lab.node(name)
    interfaces = {
        if_name: str(address) for if_name, address, _ in lab.interfaces_of(name) if address
    }
    base = {
        "lab": lab.name,
        "node": name,
        "kind": node.kind,
        "interfaces": interfaces,
    }
    vpn = node.vpn  # type: ignore[attr-defined]
    settings = vpn.model_dump(mode="json", by_alias=False)
    # model_dump masks secrets; the agent needs the real values, inside the node only.
    if isinstance(node, ConcentratorNode):
        for group_name, group in vpn.groups.items():
            settings["groups"][group_name]["psk"] = group.psk.get_secret_value()
            first, last = parse_pool(group.pool)
            settings["groups"][group_name]["pool_range"] = [str(first), str(last)]
        for user_name, user in vpn.users.items():
            settings["users"][user_name]["password"] = user.password.get_secret_value()
    else:
        settings["group_password"] = vpn.group_password.get_secret_value()
        settings["password"] = vpn.password.get_secret_value()
    return {**base, "vpn": settings}
