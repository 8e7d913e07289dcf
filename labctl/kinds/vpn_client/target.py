"""The concentrator of the lab a client points at (by its `vpn.host` address)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..concentrator import ConcentratorNode
from ..spec import NodeContext
from .model import VpnClientNode

if TYPE_CHECKING:
    from ...topology.lab import Lab


def target_concentrator(ctx: NodeContext[VpnClientNode]) -> tuple[str, ConcentratorNode] | None:
    """The lab's concentrator the client points at (None: outside the model)."""
    return concentrator_of(ctx.lab, ctx.node)


def concentrator_of(lab: Lab, node: VpnClientNode) -> tuple[str, ConcentratorNode] | None:
    target = None
    for name, other in lab.nodes.items():
        if isinstance(other, ConcentratorNode):
            addresses = [i.ipv4.ip for i in other.interfaces.values() if i.ipv4 is not None]
            if node.vpn.host in addresses:
                target = (name, other)
    return target


def announced_lifetimes(lab: Lab, node: VpnClientNode) -> tuple[int, int]:
    """(IKE, IPsec) lifetimes in seconds as a client that honours RESPONDER-LIFETIME ends
    up with: its own, or its group's on the concentrator it points at when shorter. For
    a client that ignores the notify (strongSwan's charon) labctl renders these, so it
    rekeys before the concentrator ends the SA -- as ours and vpnc do having read it."""
    ike, ipsec = node.vpn.ike_lifetime, node.vpn.ipsec_lifetime
    target = concentrator_of(lab, node)
    group = target[1].vpn.groups.get(node.vpn.group) if target else None
    if group is None:
        return ike, ipsec
    return min(ike, group.ike_lifetime), min(ipsec, group.ipsec_lifetime)


def auto_is_nat_t(ctx: NodeContext[VpnClientNode]) -> bool:
    """transparent-tunneling `auto` picks NAT-T when the concentrator does it: then a
    client that only does NAT-T (strongSwan, vpnc) behaves the same."""
    target = target_concentrator(ctx)
    return target is not None and target[1].vpn.nat_transparency.nat_t
