"""`host`: an end system (a server, a PC) with addresses and routes, nothing rendered.

The smallest kind, and the template for a new one (docs/architecture.md, "Add a node
kind"). Hosts get a TUN device so they can run third-party tunnel software (vpnc runs in
one in tests/e2e/test_vpnc_client.py).
"""

from __future__ import annotations

from typing import Literal

from ..topology.base import NodeBase
from .spec import GraphShape, Implementation, KindSpec, PushStage


class HostNode(NodeBase):
    kind: Literal["host"]


SPEC = KindSpec(
    name="host",
    summary="an end system: addresses and routes, nothing rendered",
    model=HostNode,
    implementations=(Implementation("linux", image_role="node", render=None),),
    graph=GraphShape(dot="box", mermaid=("[", "]")),
    forwarding=False,
    needs_tun=True,
    push_stage=PushStage.NETWORK,
)
