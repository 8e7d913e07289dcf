"""`vpn-client`: a Cisco VPN Client 3.x/4.x -- connects to a concentrator with group PSK +
XAUTH, gets its address by Mode-Config, transparent tunneling (NAT-T, IPsec over UDP/TCP).

model.py: the `vpn:` settings; ours.py: our agent (vpn.json, the status table, connect);
strongswan.py: Debian's charon + swanctl; vpnc.py: Debian's vpnc (same status record).
"""

from __future__ import annotations

from ..spec import GraphShape, KindSpec, NodeContext, PushStage
from .model import TransparentTunneling, VpnClientNode, VpnClientSettings
from .ours import OURS
from .strongswan import STRONGSWAN
from .target import target_concentrator
from .vpnc import VPNC

__all__ = ["SPEC", "TransparentTunneling", "VpnClientNode", "VpnClientSettings"]


def check(ctx: NodeContext[VpnClientNode]) -> None:
    """The group and user exist on the concentrator the client points at."""
    vpn = ctx.node.vpn
    if vpn.auth == "psk" and vpn.group_password is None:
        ctx.error(("vpn", "group-password"), "required with auth: psk (the group password)")
    elif vpn.auth != "psk" and vpn.group_password is not None:
        ctx.error(("vpn", "group-password"), f"not used with auth: {vpn.auth}; remove it")
    if vpn.certificate_ca != "lab" and vpn.auth == "psk":
        ctx.error(("vpn", "certificate-ca"), "auth: psk uses no certificates")
    target = target_concentrator(ctx)
    if target is None:
        return  # a client may point at something outside the model (e.g. vpnc tests)
    name, concentrator = target
    group = concentrator.vpn.groups.get(vpn.group)
    if group is None:
        ctx.error(("vpn", "group"), f"concentrator {name} has no group {vpn.group!r}")
    elif group.auth != vpn.auth:
        ctx.error(
            ("vpn", "auth"),
            f"{vpn.auth}, but group {vpn.group!r} on {name} takes auth: {group.auth}",
        )
    user = concentrator.vpn.users.get(vpn.user)
    if user is None:
        ctx.error(("vpn", "user"), f"concentrator {name} has no user {vpn.user!r}")
    elif user.group != vpn.group:
        ctx.error(
            ("vpn", "user"),
            f"user {vpn.user!r} belongs to group {user.group!r} on {name}, not {vpn.group!r}",
        )


SPEC = KindSpec(
    name="vpn-client",
    summary="a Cisco VPN Client: group PSK + XAUTH, Mode-Config, transparent tunneling",
    model=VpnClientNode,
    implementations=(OURS, STRONGSWAN, VPNC),
    graph=GraphShape(dot="component", mermaid=("[/", "/]")),
    forwarding=False,
    needs_tun=True,
    # It connects the moment its agent starts: after the network is configured.
    push_stage=PushStage.CLIENTS,
    settings=("vpn",),
    check=check,
)
