"""The concentrator of the lab a client points at (by its `vpn.host` address)."""

from __future__ import annotations

from ..concentrator import ConcentratorNode
from ..spec import NodeContext
from .model import VpnClientNode


def target_concentrator(ctx: NodeContext[VpnClientNode]) -> tuple[str, ConcentratorNode] | None:
    """The lab's concentrator the client points at (None: outside the model)."""
    target = None
    for name, other in ctx.lab.nodes.items():
        if isinstance(other, ConcentratorNode):
            addresses = [i.ipv4.ip for i in other.interfaces.values() if i.ipv4 is not None]
            if ctx.node.vpn.host in addresses:
                target = (name, other)
    return target


def auto_is_nat_t(ctx: NodeContext[VpnClientNode]) -> bool:
    """transparent-tunneling `auto` picks NAT-T when the concentrator does it: then a
    client that only does NAT-T (strongSwan, vpnc) behaves the same."""
    target = target_concentrator(ctx)
    return target is not None and target[1].vpn.nat_transparency.nat_t
