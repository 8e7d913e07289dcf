"""The `concentrator` running strongSwan (Debian's charon-systemd + swanctl).

The `vpn:` section renders to swanctl.conf (one IKEv1 aggressive-mode connection per group,
PSK + XAUTH, a pool each) and strongswan.conf; `labctl-swan reload` (in the strongswan
image) starts charon and loads them. What strongSwan cannot express is a validate error.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from ..spec import Implementation, NodeConfig, NodeContext, ShowTable
from ..third_party import (
    CHARON_LOG,
    STRONGSWAN_IMAGE,
    b64_secret,
    check_proposals,
    check_swanctl_names,
    explicit,
    join,
    log_collector,
    parse_proposal,
    refuse_natt_versions,
    secret_text,
    swan_node_config,
    swan_sas,
    unexpressible,
)
from .model import ConcentratorNode, ConcentratorSettings, parse_pool

if TYPE_CHECKING:
    from ...topology.lab import Lab

NAME = "strongswan"


def check(ctx: NodeContext[ConcentratorNode]) -> None:
    vpn = ctx.node.vpn
    nat = vpn.nat_transparency
    if not nat.nat_t:
        unexpressible(
            ctx,
            ("vpn", "nat_transparency", "nat_t"),
            NAME,
            "charon always negotiates NAT-T; set nat-t: true",
        )
    if nat.ipsec_over_udp.enabled:
        unexpressible(
            ctx,
            ("vpn", "nat_transparency", "ipsec_over_udp"),
            NAME,
            "Cisco IPsec over UDP is proprietary; charon has no such encapsulation",
        )
    if nat.ipsec_over_tcp.enabled:
        unexpressible(
            ctx,
            ("vpn", "nat_transparency", "ipsec_over_tcp"),
            NAME,
            "Cisco IPsec over TCP is proprietary; charon has no such transport",
        )
    if explicit(vpn, "version_string"):
        unexpressible(ctx, ("vpn", "version_string"), NAME, "charon sends its own vendor IDs")
    if vpn.lan_to_lan:
        unexpressible(
            ctx,
            ("vpn", "lan_to_lan"),
            NAME,
            "labctl renders remote-access groups only for strongSwan (no LAN-to-LAN yet)",
        )
    if explicit(vpn, "max_sessions"):
        unexpressible(
            ctx,
            ("vpn", "max_sessions"),
            NAME,
            "charon's ikesa_limit counts IKE SAs (a phase-1 rekey's too), not sessions",
        )
    if explicit(vpn, "fragmentation_policy"):
        unexpressible(
            ctx,
            ("vpn", "fragmentation_policy"),
            NAME,
            "it is our agent's data path (nftables on the public interface)",
        )
    refuse_natt_versions(
        ctx,
        vpn.nat_transparency,
        ("vpn", "nat_transparency"),
        NAME,
        "charon's NAT-T vendor IDs are built in, not a setting",
    )
    groups_with_users = {user.group for user in vpn.users.values()}
    if len(groups_with_users) > 1:
        unexpressible(
            ctx,
            ("vpn", "users"),
            NAME,
            "xauth-generic accepts any user's password under any group's PSK; users of "
            f"several groups ({', '.join(sorted(groups_with_users))}) cannot be kept apart",
        )
    for name, group in vpn.groups.items():
        for field in ("banner", "default_domain"):
            if getattr(group, field):
                unexpressible(
                    ctx,
                    ("vpn", "groups", name, field),
                    NAME,
                    "swanctl pools have no attribute for it",
                )
        check_proposals(
            ctx,
            NAME,
            [
                (("vpn", "groups", name, f), getattr(group, f))
                for f in ("ike_proposals", "ipsec_proposals")
            ],
        )
    check_swanctl_names(
        ctx,
        [(("vpn", "groups", name), name) for name in vpn.groups],
        [(("vpn", "users", name), name) for name in vpn.users],
    )


def vpnc_groups(lab: Lab, gateway: str) -> set[str]:
    """The groups a vpnc client of the lab uses toward this gateway (its public address)."""
    from ..registry import implementation_of
    from ..vpn_client.model import VpnClientNode

    node = lab.node(gateway)
    assert isinstance(node, ConcentratorNode)
    public = node.interfaces[node.vpn.public_interface].ipv4
    return {
        client.vpn.group
        for client in lab.nodes.values()
        if isinstance(client, VpnClientNode)
        and implementation_of(client).name == "vpnc"
        and public is not None
        and client.vpn.host == public.ip
    }


def _groups(vpn: ConcentratorSettings, vpnc: Collection[str] = ()) -> list[dict[str, Any]]:
    """Each group's values for the template; `vpnc`: groups that vpnc clients use."""
    groups = []
    for name, group in vpn.groups.items():
        first, last = parse_pool(group.pool)
        esp = group.ipsec_proposals
        if name in vpnc:
            # charon's quick mode as initiator (its rekey, at 80 or 95 %) offers every
            # configured ESP proposal as transforms of ONE proposal payload; vpnc answers a
            # gateway's quick mode only with exactly one transform (vpnc.c do_rekey:
            # `transforms->next != NULL` -> BAD_PROPOSAL_SYNTAX, and its caller sends
            # nothing back), so the rekey went unanswered and the child closed at the end
            # of its lifetime. charon picks the first configured proposal vpnc offers (it
            # offers all it has), so the group keeps that one only.
            esp = esp[:1]
        if group.pfs:  # PFS: the phase-1 DH group in quick mode too
            parsed = [parse_proposal(p) for p in group.ike_proposals]
            dh = next((p.dh for p in parsed if p is not None and p.dh), "modp1024")
            esp = [f"{p}-{dh}" if dh and len(p.split("-")) == 2 else p for p in esp]
        groups.append(
            {
                "name": name,
                "auth": group.auth,
                "psk": b64_secret(secret_text(group.psk)),
                "pool": f"{first}-{last}",
                "dns": join(group.dns),
                "nbns": join(group.wins),
                "netmask": str(group.netmask) if group.netmask else "",
                "local_ts": join(group.split_tunnel) or "0.0.0.0/0",
                "ike_proposals": join(group.ike_proposals),
                "esp_proposals": join(esp),
                "ike_reauth": group.ike_lifetime * 8 // 10 if vpn.initiate_rekeys else 0,
                "ipsec_lifetime": group.ipsec_lifetime,
                # initiate-rekeys: charon rekeys at 80 % of the lifetime (the agent's
                # margin). Off (a VPN 3000 leaves it to the clients): charon cannot tell
                # the clients its lifetime -- its quick mode answers carry no
                # RESPONDER-LIFETIME ("received 28800s lifetime, configured 60s") -- and
                # closes the child at the end of it, so a client that does not know the
                # lifetime would lose its tunnel; charon rekeys at 95 %, with no random
                # share, after clients that know it (ours: 90 %) and before it closes.
                "ipsec_rekey": group.ipsec_lifetime * 8 // 10
                if vpn.initiate_rekeys
                else group.ipsec_lifetime * 95 // 100,
                "ipsec_rand": None if vpn.initiate_rekeys else 0,
                "life_bytes": group.ipsec_lifetime_kb * 1024 if group.ipsec_lifetime_kb else 0,
            }
        )
    return groups


def render(lab: Lab, name: str) -> NodeConfig:
    from ..templates import render_template

    node = lab.node(name)
    assert isinstance(node, ConcentratorNode)
    vpn = node.vpn
    public = node.interfaces[vpn.public_interface].ipv4
    assert public is not None  # the kind's check requires an address
    text = render_template(
        "labctl.kinds.concentrator",
        "swanctl-gateway.conf.j2",
        node=name,
        public_ip=str(public.ip),
        groups=_groups(vpn, vpnc_groups(lab, name)),
        users=[
            {"name": user_name, "password": b64_secret(user.password.get_secret_value())}
            for user_name, user in vpn.users.items()
        ],
        fragmentation=vpn.ike_fragmentation.enabled,
        dpd_delay=vpn.dpd.interval,
        # IKEv1: charon counts dpd_timeout from the last packet received, not from its
        # R-U-THERE: the idle interval plus the retries
        dpd_timeout=vpn.dpd.interval + vpn.dpd.retries * vpn.dpd.retry_interval,
    )
    return swan_node_config(name, text, vpn, cisco_unity=True, responder=True)


def collect_sessions(handle: Any, node: str, verbose: bool = False) -> tuple[Any, str]:
    from ...state.swanctl import gateway_sessions, render_sessions

    sas, esp = swan_sas(handle, node)
    records = gateway_sessions(sas, esp)
    return records, render_sessions(records)


STRONGSWAN = Implementation(
    NAME,
    image_role=STRONGSWAN_IMAGE,
    render=render,
    shows=(
        ShowTable(
            "sessions",
            "VPN sessions, the same records as ours (null: strongSwan does not report it)",
            collect_sessions,
        ),
        ShowTable("log", "charon's log (-v: more lines)", log_collector(CHARON_LOG)),
    ),
    check=check,
)
