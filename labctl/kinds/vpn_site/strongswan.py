"""The `vpn-site` running strongSwan (Debian's charon-systemd + swanctl): the branch end of
a LAN-to-LAN tunnel, IKEv1 main mode with the PSK, one child SA per network pair (quick
mode with subnet selectors), NAT-T when charon finds a NAT. charon routes the remote
networks itself (its table 220), so the LAN's traffic goes through the tunnel."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from ..spec import ClientCommands, Implementation, NodeConfig, NodeContext, ShowTable
from ..third_party import (
    CHARON_LOG,
    STRONGSWAN_IMAGE,
    b64_secret,
    join,
    log_collector,
    parse_proposal,
    swan_node_config,
    swan_sas,
    unexpressible,
)
from .model import VpnSiteNode

if TYPE_CHECKING:
    from ...topology.lab import Lab

NAME = "strongswan"


def check(ctx: NodeContext[VpnSiteNode]) -> None:
    vpn = ctx.node.vpn
    if not vpn.nat_t:
        unexpressible(
            ctx, ("vpn", "nat_t"), NAME, "charon always negotiates NAT-T when it detects a NAT"
        )
    for field in ("ike_proposals", "ipsec_proposals"):
        for index, text in enumerate(getattr(vpn, field)):
            if parse_proposal(text) is None:
                unexpressible(
                    ctx,
                    ("vpn", field, str(index)),
                    NAME,
                    f"{text!r} is not a cipher-hash[-modpN] labctl can translate",
                )


def children(node: VpnSiteNode) -> list[dict[str, str]]:
    """One child per (local, remote) pair: IKEv1 negotiates one pair per quick mode."""
    vpn = node.vpn
    pairs = [(lo, re) for lo in vpn.local_networks for re in vpn.remote_networks]
    return [
        {"name": f"net-{n}", "local": str(lo), "remote": str(re)}
        for n, (lo, re) in enumerate(pairs)
    ]


def render(lab: Lab, name: str) -> NodeConfig:
    from ..templates import render_template

    node = lab.node(name)
    assert isinstance(node, VpnSiteNode)
    vpn = node.vpn
    text = render_template(
        "labctl.kinds.vpn_site",
        "swanctl-site.conf.j2",
        node=name,
        peer=str(vpn.peer),
        psk=b64_secret(vpn.psk.get_secret_value()),
        ike_proposals=join(vpn.ike_proposals),
        esp_proposals=join(vpn.ipsec_proposals),
        dpd_delay=vpn.dpd.interval,
        # IKEv1: charon counts dpd_timeout from the last packet received
        dpd_timeout=vpn.dpd.interval + vpn.dpd.retries * vpn.dpd.retry_interval,
        reauth_time=vpn.ike_lifetime * 9 // 10,
        ipsec_lifetime=vpn.ipsec_lifetime,
        ipsec_rekey=vpn.ipsec_lifetime * 9 // 10,
        auto_connect=vpn.auto_connect,
        children=children(node),
    )
    return swan_node_config(name, text, vpn, cisco_unity=False, responder=False)


def collect_status(handle: Any, node: str, verbose: bool = False) -> tuple[Any, str]:
    """The client status record (state, NAT, ports, counters) of the site's IKE SA."""
    from ...state.swanctl import client_status, render_status

    sas, esp = swan_sas(handle, node)
    vpn = handle.lab.node(node).vpn
    shape = SimpleNamespace(host=vpn.peer, group="LAN-to-LAN", user=node)
    record = client_status(sas, shape, esp)
    return record, render_status(record)


STRONGSWAN = Implementation(
    NAME,
    image_role=STRONGSWAN_IMAGE,
    render=render,
    shows=(
        ShowTable("status", "LAN-to-LAN tunnel status (strongSwan's IKE SA)", collect_status),
        ShowTable("log", "charon's log (-v: more lines)", log_collector(CHARON_LOG)),
    ),
    check=check,
    client=ClientCommands(
        connect="labctl-swan connect net-0 60",
        connect_timeout=75,
        disconnect="labctl-swan disconnect",
        disconnect_timeout=30,
    ),
)
