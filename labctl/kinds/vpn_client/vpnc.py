"""The `vpn-client` running Debian's vpnc, with labctl-vpnc-script (it only configures
vpnc's TUN inside the node and records the Mode-Config attributes for `show status`).

vpnc has no switch to choose its transforms: it offers its whole list (AES and 3DES with
SHA1 and MD5; DES only with its weak switches) and the concentrator picks. labctl renders
the DH group of the proposals (one for all of them), PFS from the IPsec proposals, and the
weak switches the listed ciphers and hashes need; an algorithm vpnc lacks is an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..collect import run
from ..spec import ClientCommands, Implementation, NodeConfig, NodeContext, RenderedFile, ShowTable
from ..third_party import (
    DH_GROUPS,
    SECRET_MODE,
    STRONGSWAN_IMAGE,
    check_one_line,
    check_proposals,
    explicit,
    log_collector,
    no_certificates,
    parse_proposal,
    refuse_export_keys,
    secret_text,
)
from ..third_party import unexpressible as _unexpressible
from .model import VpnClientNode
from .target import auto_is_nat_t

if TYPE_CHECKING:
    from ...topology.lab import Lab

NAME = "vpnc"
CONF = "/etc/labctl/vpnc/vpnc.conf"
AUTO_CONNECT = "/etc/labctl/vpnc/auto-connect"
NATT_MODES = {"nat-t": "natt", "udp": "cisco-udp"}
WEAK_CIPHERS = {"3des", "des"}
WEAK_HASHES = {"md5"}
VPNC_HASHES = {"md5", "sha1"}


def _unexp(ctx: NodeContext, path: tuple[str, ...], why: str) -> None:
    _unexpressible(ctx, path, NAME, why)


def _dh_groups(texts: list[str]) -> set[str]:
    return {p.dh for p in map(parse_proposal, texts) if p is not None and p.dh}


def check(ctx: NodeContext[VpnClientNode]) -> None:
    vpn = ctx.node.vpn
    no_certificates(ctx, ("vpn", "auth"), NAME, vpn.auth)
    tt = vpn.transparent_tunneling
    auto_ok = tt.mode == "auto" and auto_is_nat_t(ctx)
    if tt.enabled and tt.mode not in NATT_MODES and not auto_ok:
        _unexp(
            ctx,
            ("vpn", "transparent_tunneling", "mode"),
            f"{tt.mode!r}: vpnc does natt or cisco-udp (no IPsec over TCP; 'auto' only "
            "toward a concentrator with NAT-T on)",
        )
    if tt.enabled and tt.mode == "udp" and explicit(tt, "port"):
        _unexp(
            ctx,
            ("vpn", "transparent_tunneling", "port"),
            "vpnc learns the IPsec over UDP port from the concentrator",
        )
    if tt.nat_t_versions is not None:
        _unexp(
            ctx,
            ("vpn", "transparent_tunneling", "nat_t_versions"),
            "vpnc's NAT-T vendor IDs are built in, not a setting",
        )
    if vpn.local_lan_access:
        _unexp(ctx, ("vpn", "local_lan_access"), "labctl-vpnc-script routes no local LAN")
    if explicit(vpn, "peer_response_timeout"):
        _unexp(ctx, ("vpn", "peer_response_timeout"), "vpnc's timeouts are built in")
    if explicit(vpn, "nat_keepalive"):
        _unexp(ctx, ("vpn", "nat_keepalive"), "vpnc's NAT-T keepalive interval is built in")
    if vpn.dpd.interval < 10:
        _unexp(ctx, ("vpn", "dpd", "interval"), "vpnc's DPD idle timeout is 0 or 10-86400 s")
    for field in ("retries", "retry_interval"):
        if explicit(vpn.dpd, field):
            _unexp(ctx, ("vpn", "dpd", field), "vpnc's DPD retries are built in")
    refuse_export_keys(ctx, vpn, NAME, "vpnc cannot export its keys")
    check_one_line(
        ctx,
        NAME,
        [
            (("vpn", "group"), vpn.group),
            (("vpn", "user"), vpn.user),
            (("vpn", "group_password"), secret_text(vpn.group_password)),
            (("vpn", "password"), secret_text(vpn.password)),
            (("vpn", "client_version"), vpn.client_version),
            (("vpn", "client_os"), vpn.client_os),
        ],
    )
    if vpn.mtu is not None:
        _unexp(ctx, ("vpn", "mtu"), "vpnc's TUN MTU comes from the concentrator or vpnc")
    for field in ("ike_lifetime", "ipsec_lifetime", "ipsec_lifetime_kb"):
        if explicit(vpn, field):
            _unexp(ctx, ("vpn", field), "vpnc's lifetimes are built in")
    if vpn.ike_fragmentation.enabled:
        _unexp(ctx, ("vpn", "ike_fragmentation", "enabled"), "vpnc has no IKE fragmentation")
    check_proposals(
        ctx, NAME, [(("vpn", f), getattr(vpn, f)) for f in ("ike_proposals", "ipsec_proposals")]
    )
    for field in ("ike_proposals", "ipsec_proposals"):
        for index, text in enumerate(getattr(vpn, field)):
            parsed = parse_proposal(text)
            if parsed is not None and parsed.hashing not in VPNC_HASHES:
                _unexp(ctx, ("vpn", field, str(index)), f"{text!r}: vpnc offers MD5 and SHA1 only")
        groups = _dh_groups(getattr(vpn, field))
        if len(groups) > 1:
            _unexp(
                ctx,
                ("vpn", field),
                f"vpnc uses one DH group for all proposals, not {sorted(groups)}",
            )
    if not _dh_groups(vpn.ike_proposals):
        _unexp(ctx, ("vpn", "ike_proposals"), "vpnc needs a DH group (-modpN)")


def vpnc_values(node: VpnClientNode, name: str) -> dict[str, Any]:
    vpn = node.vpn
    proposals = [p for p in map(parse_proposal, vpn.ike_proposals + vpn.ipsec_proposals) if p]
    ike_dh = sorted(_dh_groups(vpn.ike_proposals)) or ["modp1024"]
    pfs_dh = sorted(_dh_groups(vpn.ipsec_proposals))
    tt = vpn.transparent_tunneling
    return {
        "node": name,
        "host": str(vpn.host),
        "group": vpn.group,
        "user": vpn.user,
        "group_password": secret_text(vpn.group_password),
        "password": vpn.password.get_secret_value(),
        "dh_group": f"dh{DH_GROUPS[ike_dh[0]]}",
        "pfs": f"dh{DH_GROUPS[pfs_dh[0]]}" if pfs_dh else "nopfs",
        "natt_mode": NATT_MODES.get(tt.mode, "natt") if tt.enabled else "none",
        "dpd_idle": vpn.dpd.interval,
        "application_version": f"Cisco Systems VPN Client {vpn.client_version}:{vpn.client_os}",
        "debug": 1 if vpn.log_level == "debug" else 0,
        "weak_encryption": any(p.cipher in WEAK_CIPHERS for p in proposals),
        "weak_authentication": any(p.hashing in WEAK_HASHES for p in proposals),
    }


def render(lab: Lab, name: str) -> NodeConfig:
    from ..templates import render_template

    node = lab.node(name)
    assert isinstance(node, VpnClientNode)
    text = render_template("labctl.kinds.vpn_client", "vpnc.conf.j2", **vpnc_values(node, name))
    files = [RenderedFile(CONF, text.encode(), SECRET_MODE)]
    if node.vpn.auto_connect:
        files.append(RenderedFile(AUTO_CONNECT, b"", 0o644))
    # A push without auto-connect leaves a marker of an earlier push: remove it first.
    remove = () if node.vpn.auto_connect else (f"rm -f {AUTO_CONNECT}",)
    return NodeConfig(name, tuple(files), (*remove, "labctl-vpnc reload"))


def collect_status(handle: Any, node: str, verbose: bool = False) -> tuple[Any, str]:
    from ...state.vpnc import parse_state, render_status, vpnc_status

    lab_node = handle.lab.node(node)
    record = vpnc_status(parse_state(run(handle, node, "labctl-vpnc state")), lab_node.vpn)
    return record, render_status(record)


VPNC = Implementation(
    NAME,
    image_role=STRONGSWAN_IMAGE,
    render=render,
    shows=(
        ShowTable(
            "status",
            "VPN client status, the same record as ours (null: vpnc does not report it)",
            collect_status,
        ),
        ShowTable(
            "log", "vpnc's output (-v: more lines)", log_collector("/var/log/labctl/vpnc.log")
        ),
    ),
    check=check,
    client=ClientCommands(
        connect="labctl-vpnc connect 60",
        connect_timeout=75,
        disconnect="labctl-vpnc disconnect",
        disconnect_timeout=30,
    ),
)
