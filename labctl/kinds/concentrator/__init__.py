"""`concentrator`: a Cisco VPN 3000 -- IKEv1 aggressive mode, PSK + XAUTH, Mode-Config
pools, NAT transparency (NAT-T, IPsec over UDP, IPsec over TCP), DPD; LAN-to-LAN tunnels
(main mode PSK by peer address, network lists, their own NAT-T switch).

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
    LanToLan,
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
    "LanToLan",
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
    if not vpn.groups and not vpn.lan_to_lan:
        ctx.error(("vpn", "groups"), "needs at least one group or lan-to-lan entry")
    peers: dict[IPv4Address, str] = {}
    for l2l_name, l2l in vpn.lan_to_lan.items():
        path = ("vpn", "lan-to-lan", l2l_name, "peer")
        if l2l.peer in peers:
            # main mode picks the pre-shared key by the peer's address: one entry per peer
            ctx.error(path, f"peer {l2l.peer} is also the peer of {peers[l2l.peer]!r}")
        peers[l2l.peer] = l2l_name
        for remote in l2l.remote_networks:
            for local in l2l.local_networks:
                if remote.overlaps(local):
                    ctx.error(
                        ("vpn", "lan-to-lan", l2l_name, "remote-networks"),
                        f"{remote} overlaps local network {local}",
                    )
    _check_auth(ctx)
    for user_name, user in vpn.users.items():
        if user.group not in vpn.groups:
            ctx.error(
                ("vpn", "users", user_name, "group"),
                f"no group {user.group!r} on this concentrator (have: {', '.join(vpn.groups)})",
            )


def _check_auth(ctx: NodeContext[ConcentratorNode]) -> None:
    """A group's password goes with auth: psk only; hybrid knows clients by XAUTH only."""
    vpn = ctx.node.vpn
    for name, group in vpn.groups.items():
        path = ("vpn", "groups", name)
        if group.auth == "psk" and group.psk is None:
            ctx.error((*path, "psk"), "required with auth: psk (the group password)")
        elif group.auth != "psk" and group.psk is not None:
            ctx.error(
                (*path, "psk"),
                f"not used with auth: {group.auth} (its clients send no group password); remove it",
            )
        if group.auth == "hybrid" and not any(u.group == name for u in vpn.users.values()):
            ctx.error(
                (*path, "auth"),
                "hybrid authenticates clients by XAUTH only: no user of this concentrator "
                f"is in group {name!r}",
            )


def networks(node: ConcentratorNode) -> Iterator[IPv4Network]:
    """The address pools and split-tunnel networks: the clients' side of the tunnels."""
    for group in node.vpn.groups.values():
        yield from summarize_address_range(*parse_pool(group.pool))
        yield from group.split_tunnel
    for l2l in node.vpn.lan_to_lan.values():
        yield from l2l.remote_networks


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
