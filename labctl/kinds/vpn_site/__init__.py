"""`vpn-site`: a branch office's VPN gateway -- the other end of a concentrator's
LAN-to-LAN entry (main mode PSK, quick mode for network-to-network selectors, NAT-T when
a NAT is found, DPD, rekeys); it routes its LAN's traffic for the remote networks into
the tunnel.

model.py: the `vpn:` settings; ours.py: our agent in its site-to-site role; strongswan.py:
Debian's charon + swanctl (net-to-net IKEv1 main mode PSK).
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Network

from ..concentrator import ConcentratorNode
from ..spec import GraphShape, KindSpec, NodeContext, PushStage
from .model import VpnSiteNode, VpnSiteSettings
from .ours import OURS
from .strongswan import STRONGSWAN

__all__ = ["SPEC", "VpnSiteNode", "VpnSiteSettings"]


def check(ctx: NodeContext[VpnSiteNode]) -> None:
    """An interface on a local network; the concentrator it points at has a matching entry."""
    vpn = ctx.node.vpn
    addresses = [i.ipv4.ip for i in ctx.node.interfaces.values() if i.ipv4 is not None]
    if not any(a in n for a in addresses for n in vpn.local_networks):
        ctx.error(("vpn", "local-networks"), "no interface of this node has an address in them")
    for remote in vpn.remote_networks:
        for local in vpn.local_networks:
            if remote.overlaps(local):
                ctx.error(("vpn", "remote-networks"), f"{remote} overlaps local network {local}")
    for name, other in ctx.lab.nodes.items():
        if not isinstance(other, ConcentratorNode):
            continue
        if vpn.peer not in [i.ipv4.ip for i in other.interfaces.values() if i.ipv4 is not None]:
            continue
        mine, theirs = set(vpn.local_networks), set(vpn.remote_networks)
        if not any(
            set(e.remote_networks) == mine and set(e.local_networks) == theirs
            for e in other.vpn.lan_to_lan.values()
        ):
            ctx.error(
                ("vpn", "peer"),
                f"concentrator {name} has no lan-to-lan entry with local networks "
                f"{', '.join(map(str, vpn.remote_networks))} and remote networks "
                f"{', '.join(map(str, vpn.local_networks))}",
            )


def networks(node: VpnSiteNode) -> Iterator[IPv4Network]:
    """The networks behind the concentrator, reached through the tunnel."""
    yield from node.vpn.remote_networks


SPEC = KindSpec(
    name="vpn-site",
    summary="a branch office's VPN gateway: the peer of a concentrator's LAN-to-LAN entry",
    model=VpnSiteNode,
    implementations=(OURS, STRONGSWAN),
    graph=GraphShape(dot="component", mermaid=("[/", "/]")),
    forwarding=True,  # routes its LAN's traffic into the tunnel
    needs_tun=True,
    # It connects the moment its agent starts: after the network (its PAT) is configured.
    push_stage=PushStage.CLIENTS,
    settings=("vpn",),
    check=check,
    networks=networks,
)
