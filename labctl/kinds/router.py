"""`router`: forwards between its interfaces by its static routes; nothing rendered."""

from __future__ import annotations

from typing import Literal

from ..topology.base import NodeBase
from .spec import GraphShape, Implementation, KindSpec, PushStage


class RouterNode(NodeBase):
    kind: Literal["router"]


SPEC = KindSpec(
    name="router",
    summary="forwards between its interfaces by its static routes",
    model=RouterNode,
    implementations=(Implementation("linux", image_role="node", render=None),),
    graph=GraphShape(dot="ellipse", mermaid=("((", "))")),
    forwarding=True,
    needs_tun=False,
    push_stage=PushStage.NETWORK,
)
