"""`concentrator`: a Cisco VPN 3000 -- IKEv1 aggressive mode, PSK + XAUTH, Mode-Config
pools, NAT transparency (NAT-T, IPsec over UDP, IPsec over TCP), DPD.

model.py: the `vpn:` settings; ours.py: our agent (vpn.json, the sessions table);
strongswan.py: Debian's charon + swanctl (swanctl.conf, the same sessions records).
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network, summarize_address_range

from ..spec import GraphShape, KindSpec, NodeContext, PushStage
from .model import (
    ConcentratorNode,
    ConcentratorSettings,
    NatTransparency,
    PortToggle,
    VpnGroup,
    VpnUser,
    parse_pool,
)
from .ours import OURS
from .strongswan import STRONGSWAN

__all__ = [
    "SPEC",
    "ConcentratorNode",
    "ConcentratorSettings",
    "NatTransparency",
    "PortToggle",
    "VpnGroup",
    "VpnUser",
    "parse_pool",
]


def check(ctx: NodeContext[ConcentratorNode]) -> None:
    node, vpn = ctx.node, ctx.node.vpn
    for field, if_name in (
        ("public-interface", vpn.public_interface),
        ("private-interface", vpn.private_interface),
    ):
        if if_name is None:
            continue
        config = node.interfaces.get(if_name)
        if config is None or config.ipv4 is None:
            ctx.error(("vpn", field), f"{if_name!r} is not an addressed interface of this node")
    pools: list[tuple[str, IPv4Address, IPv4Address]] = []
    for group_name, group in vpn.groups.items():
        path = ("vpn", "groups", group_name, "pool")
        try:
            first, last = parse_pool(group.pool)
        except ValueError as exc:
            ctx.error(path, f"bad pool: {exc}")
            continue
        for subnet in ctx.subnets.values():
            if first in subnet or last in subnet:
                ctx.error(path, f"pool {group.pool} overlaps lab subnet {subnet}")
                break
        for other, o_first, o_last in pools:
            if int(first) <= int(o_last) and int(o_first) <= int(last):
                ctx.error(path, f"pool {group.pool} overlaps the pool of group {other!r}")
        pools.append((group_name, first, last))
    for user_name, user in vpn.users.items():
        if user.group not in vpn.groups:
            ctx.error(
                ("vpn", "users", user_name, "group"),
                f"no group {user.group!r} on this concentrator (have: {', '.join(vpn.groups)})",
            )


def networks(node: ConcentratorNode) -> Iterator[IPv4Network]:
    """The address pools and split-tunnel networks: the clients' side of the tunnels."""
    for group in node.vpn.groups.values():
        yield from summarize_address_range(*parse_pool(group.pool))
        yield from group.split_tunnel


SPEC = KindSpec(
    name="concentrator",
    summary="a VPN 3000 concentrator: IKEv1 + XAUTH + Mode-Config, NAT transparency",
    model=ConcentratorNode,
    implementations=(OURS, STRONGSWAN),
    graph=GraphShape(dot="doubleoctagon", mermaid=("[[", "]]")),
    forwarding=True,
    needs_tun=True,
    push_stage=PushStage.NETWORK,
    settings=("vpn",),
    check=check,
    networks=networks,
)
