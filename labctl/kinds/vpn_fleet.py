"""`vpn-fleet`: N simulated VPN clients in one container (labctl/agent/fleet.py).

One agent process runs one client engine per member on one event loop. Member n is
``NODE/n``: user n of the `vpn.user` range (``vpnclient{1..1000}``), the n-th address from
`fleet.addresses` (a /32 alias the agent adds on `fleet.interface`; the PAT routes the
fleet's addresses to the node's interface address), its own UDP 500/4500 sockets, IKE SA,
Mode-Config address and ESP SAs. `status` has one row per member (`where: {name:
fleet/17}`); `fleet` is the crowd's summary (connect-time percentiles, pings, memory).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from ..topology.base import NodeBase, Strict
from .collect import json_and_text, run
from .spec import (
    ClientCommands,
    GraphShape,
    Implementation,
    KindSpec,
    NodeConfig,
    NodeContext,
    PushStage,
    ShowTable,
)
from .vpn_agent import AGENT_SHOWS, agent_node_config, settings_json
from .vpn_client.model import VpnClientSettings

if TYPE_CHECKING:
    from ..topology.lab import Lab


class FleetVpnSettings(VpnClientSettings):
    user: str = Field(
        pattern=r"^[^{}]*\{\d+\.\.\d+\}[^{}]*$",
        description="one range: vpnclient{1..1000} is one simulated client per number",
    )


class FleetSection(Strict):
    addresses: IPv4Address = Field(
        description="the first simulated client's inside address; the others follow it"
    )
    interface: str | None = Field(
        None, description="where the addresses go (default: the node's only interface)"
    )
    connect_rate: float = Field(50.0, gt=0, le=10000, description="connects started per second")
    max_connecting: int = Field(
        25,
        ge=1,
        description="clients between connect and connected at once, at most: on a busy "
        "machine a faster pace only queues requests until clients retransmit them",
    )
    reconnect: bool = Field(
        True, description="a failed client tries again (off: it stays failed, its reason shown)"
    )


class VpnFleetNode(NodeBase):
    kind: Literal["vpn-fleet"]
    vpn: FleetVpnSettings
    fleet: FleetSection


def members(node: VpnFleetNode) -> list[tuple[int, str, IPv4Address]]:
    """(number, user, address) of every simulated client."""
    from ..agent.fleet_settings import members_of

    found = members_of(node.vpn.user, node.fleet.addresses, "")
    return [(m.number, m.user, m.address) for m in found]


def _interface(name: str, node: VpnFleetNode) -> str | None:
    if node.fleet.interface is not None:
        return node.fleet.interface
    names = list(node.interfaces)
    return names[0] if len(names) == 1 else None


def render(lab: Lab, name: str) -> NodeConfig:
    node = lab.node(name)
    assert isinstance(node, VpnFleetNode)
    settings = settings_json(node.vpn)
    settings["fleet"] = settings_json(node.fleet) | {"interface": _interface(name, node)}
    return agent_node_config(lab, name, settings)


def check(ctx: NodeContext[VpnFleetNode]) -> None:
    """NAT-T only; an interface for the addresses; the concentrator knows every user."""
    from .concentrator import ConcentratorNode

    node = ctx.node
    tt = node.vpn.transparent_tunneling
    if not tt.enabled or tt.mode != "nat-t":
        ctx.error(("vpn", "transparent-tunneling"), "a fleet does NAT-T only (mode: nat-t)")
    if node.vpn.auth != "psk":  # labctl issues no certificates for simulated clients
        ctx.error(("vpn", "auth"), f"a fleet authenticates with psk only, not {node.vpn.auth}")
    interface = _interface(ctx.name, node)
    if interface is None:
        ctx.error(("fleet", "interface"), "name the interface the addresses go on")
    elif interface not in node.interfaces:
        ctx.error(("fleet", "interface"), f"{interface!r} is not an interface of this node")
    found = members(node)
    last = found[-1][2]
    if int(last) > int(IPv4Address("255.255.255.254")):
        ctx.error(("fleet", "addresses"), f"{len(found)} addresses do not fit after the first")
    for if_name, config in node.interfaces.items():
        if config.ipv4 is not None and any(a in config.ipv4.network for _, _, a in found):
            ctx.error(
                ("fleet", "addresses"),
                f"the clients' addresses overlap {if_name}'s subnet {config.ipv4.network}: "
                "give them their own prefix (the PAT routes it to this node)",
            )
    for name, other in ctx.lab.nodes.items():
        if not isinstance(other, ConcentratorNode):
            continue
        if node.vpn.host not in [i.ipv4.ip for i in other.interfaces.values() if i.ipv4]:
            continue
        if node.vpn.group not in other.vpn.groups:
            ctx.error(("vpn", "group"), f"concentrator {name} has no group {node.vpn.group!r}")
        missing = [user for _, user, _ in found if user not in other.vpn.users]
        if missing:
            ctx.error(
                ("vpn", "user"),
                f"concentrator {name} lacks {len(missing)} of the fleet's users "
                f"(first: {missing[0]!r})",
            )


def networks(node: VpnFleetNode) -> Iterator[IPv4Network]:
    """The simulated clients' addresses (kept out of the management subnet)."""
    found = members(node)
    yield from _summaries(found[0][2], found[-1][2])


def _summaries(first: IPv4Address, last: IPv4Address) -> Iterator[IPv4Network]:
    from ipaddress import summarize_address_range

    yield from summarize_address_range(first, last)


def collect_status(handle: Any, node: str, verbose: bool = False) -> tuple[Any, str]:
    rows = json.loads(run(handle, node, "vpn status --json"))
    return rows, run(handle, node, "vpn status")


OURS = Implementation(
    "ours",
    image_role="vpn",
    render=render,
    shows=(
        ShowTable("status", "one row per simulated client (name NODE/n)", collect_status),
        ShowTable(
            "fleet",
            "the fleet: connect-time percentiles, pings, memory, CPU",
            json_and_text("vpn fleet --json", "vpn fleet"),
        ),
        *AGENT_SHOWS,
    ),
    client=ClientCommands(
        connect="vpn fleet connect --wait --timeout 900",
        connect_timeout=930,
        disconnect="vpn fleet disconnect",
        disconnect_timeout=60,
    ),
)

SPEC = KindSpec(
    name="vpn-fleet",
    summary="N simulated VPN clients in one container: one agent, one engine per client",
    model=VpnFleetNode,
    implementations=(OURS,),
    graph=GraphShape(dot="component", mermaid=("[/", "/]")),
    forwarding=False,
    needs_tun=True,  # CAP_NET_ADMIN for the address aliases (no TUN is opened)
    push_stage=PushStage.CLIENTS,
    settings=("vpn", "fleet"),
    check=check,
    networks=networks,
)
