"""`pat-firewall`: a PIX 6.3 doing PAT (``nat (inside) 1 0 0`` + ``global (outside) 1
interface``) -- nftables masquerade on Linux, its translation table read from conntrack.

model.py: the `pat:` settings; nftables.py: rendering and the xlate/nft/counters tables;
templates/nftables.nft.j2: the ruleset.
"""

from __future__ import annotations

from ..spec import GraphShape, KindSpec, NodeContext, PushStage
from .model import PatFirewallNode, PatSettings, PatTimeouts
from .nftables import NFTABLES

__all__ = ["SPEC", "PatFirewallNode", "PatSettings", "PatTimeouts"]


def check(ctx: NodeContext[PatFirewallNode]) -> None:
    node, pat = ctx.node, ctx.node.pat
    for if_name in [*pat.inside, pat.outside]:
        if if_name not in node.interfaces:
            ctx.error(("pat",), f"interface {if_name!r} is not an interface of this node")
    if pat.outside in pat.inside:
        ctx.error(("pat", "outside"), f"{pat.outside!r} cannot be both inside and outside")
    outside = node.interfaces.get(pat.outside)
    if outside is not None and outside.ipv4 is None:
        ctx.error(
            ("pat", "outside"),
            f"outside interface {pat.outside!r} has no address to translate to",
        )


SPEC = KindSpec(
    name="pat-firewall",
    summary="PIX-style PAT: inside networks masqueraded to the outside interface's address",
    model=PatFirewallNode,
    implementations=(NFTABLES,),
    graph=GraphShape(dot="hexagon", mermaid=("{{", "}}")),
    forwarding=True,
    needs_tun=False,
    push_stage=PushStage.NETWORK,
    settings=("pat",),
    check=check,
)
