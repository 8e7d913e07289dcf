"""The `vpn-client` running strongSwan (Debian's charon-systemd + swanctl): IKEv1
aggressive mode with the group name as KEY_ID, PSK + XAUTH, Mode-Config, NAT-T."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..spec import ClientCommands, Implementation, NodeConfig, NodeContext, ShowTable
from ..third_party import (
    CHARON_LOG,
    STRONGSWAN_IMAGE,
    b64_secret,
    check_proposals,
    check_swanctl_names,
    explicit,
    join,
    log_collector,
    refuse_natt_versions,
    secret_text,
    swan_node_config,
    swan_sas,
    unexpressible,
)
from .model import VpnClientNode
from .target import announced_lifetimes, auto_is_nat_t

if TYPE_CHECKING:
    from ...topology.lab import Lab

NAME = "strongswan"
CHILD = "labctl"


def check(ctx: NodeContext[VpnClientNode]) -> None:
    vpn = ctx.node.vpn
    tt = vpn.transparent_tunneling
    if not tt.enabled:
        unexpressible(
            ctx,
            ("vpn", "transparent_tunneling", "enabled"),
            NAME,
            "charon always negotiates NAT-T when it detects a NAT",
        )
    elif tt.mode != "nat-t" and not (tt.mode == "auto" and auto_is_nat_t(ctx)):
        unexpressible(
            ctx,
            ("vpn", "transparent_tunneling", "mode"),
            NAME,
            f"{tt.mode!r}: charon does NAT-T only (no Cisco IPsec over UDP or TCP; 'auto' "
            "only toward a concentrator with NAT-T on)",
        )
    if vpn.local_lan_access:
        unexpressible(ctx, ("vpn", "local_lan_access"), NAME, "no Cisco local-LAN attribute")
    for field in ("client_version", "client_os"):
        if explicit(vpn, field):
            unexpressible(ctx, ("vpn", field), NAME, "charon sends no Cisco client version")
    if explicit(vpn, "peer_response_timeout"):
        unexpressible(
            ctx,
            ("vpn", "peer_response_timeout"),
            NAME,
            "charon's retransmission timers are global (strongswan.conf), not per peer",
        )
    if vpn.mtu is not None:
        unexpressible(
            ctx, ("vpn", "mtu"), NAME, "kernel-libipsec's ipsec0 MTU is charon's, not per peer"
        )
    refuse_natt_versions(
        ctx,
        tt,
        ("vpn", "transparent_tunneling"),
        NAME,
        "charon's NAT-T vendor IDs are built in, not a setting",
    )
    check_proposals(
        ctx, NAME, [(("vpn", f), getattr(vpn, f)) for f in ("ike_proposals", "ipsec_proposals")]
    )
    check_swanctl_names(ctx, [(("vpn", "group"), vpn.group)], [(("vpn", "user"), vpn.user)])


def render(lab: Lab, name: str) -> NodeConfig:
    from ..templates import render_template

    node = lab.node(name)
    assert isinstance(node, VpnClientNode)
    vpn = node.vpn
    ike_lifetime, ipsec_lifetime = announced_lifetimes(lab, node)
    text = render_template(
        "labctl.kinds.vpn_client",
        "swanctl-client.conf.j2",
        node=name,
        host=str(vpn.host),
        group=vpn.group,
        auth=vpn.auth,
        user=vpn.user,
        group_password=b64_secret(secret_text(vpn.group_password)),
        password=b64_secret(vpn.password.get_secret_value()),
        ike_proposals=join(vpn.ike_proposals),
        esp_proposals=join(vpn.ipsec_proposals),
        dpd_delay=vpn.dpd.interval,
        # IKEv1: charon counts dpd_timeout from the last packet received, not from its
        # R-U-THERE: the idle interval plus the retries
        dpd_timeout=vpn.dpd.interval + vpn.dpd.retries * vpn.dpd.retry_interval,
        auto_connect=vpn.auto_connect,
        fragmentation=vpn.ike_fragmentation.enabled,
        # IKEv1 has no IKE rekey: charon reauthenticates; both before the lifetime ends.
        # charon ignores RESPONDER-LIFETIME (it parses the notify as N((24576)) and keeps
        # its own lifetime): the concentrator's shorter lifetimes are rendered instead
        reauth_time=ike_lifetime * 9 // 10,
        over_time=ike_lifetime - ike_lifetime * 9 // 10,
        ipsec_lifetime=ipsec_lifetime,
        ipsec_rekey=ipsec_lifetime * 9 // 10,
        life_bytes=vpn.ipsec_lifetime_kb * 1024 if vpn.ipsec_lifetime_kb else 0,
        rekey_bytes=vpn.ipsec_lifetime_kb * 1024 * 9 // 10 if vpn.ipsec_lifetime_kb else 0,
    )
    return swan_node_config(name, text, vpn, cisco_unity=True, responder=False)


def collect_status(handle: Any, node: str, verbose: bool = False) -> tuple[Any, str]:
    from ...state.swanctl import client_status, render_status

    sas, esp = swan_sas(handle, node)
    lab_node = handle.lab.node(node)
    record = client_status(sas, lab_node.vpn, esp)
    return record, render_status(record)


STRONGSWAN = Implementation(
    NAME,
    image_role=STRONGSWAN_IMAGE,
    render=render,
    shows=(
        ShowTable(
            "status",
            "VPN client status, the same record as ours (null: strongSwan does not report it)",
            collect_status,
        ),
        ShowTable("log", "charon's log (-v: more lines)", log_collector(CHARON_LOG)),
    ),
    check=check,
    client=ClientCommands(
        connect=f"labctl-swan connect {CHILD} 60",
        connect_timeout=75,
        disconnect="labctl-swan disconnect",
        disconnect_timeout=30,
    ),
)
