"""The `vpn-site` node model: a branch office's VPN gateway, the other end of a
concentrator's LAN-to-LAN entry."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Literal

from pydantic import Field

from ...topology.base import NodeBase, SecretValue, Strict
from ..vpn_settings import DebugSettings, DpdSettings, Proposal


class VpnSiteSettings(Strict):
    peer: IPv4Address = Field(description="the concentrator's public address")
    psk: SecretValue
    local_networks: list[IPv4Network] = Field(min_length=1, description="this site's LANs")
    remote_networks: list[IPv4Network] = Field(
        min_length=1, description="the networks behind the concentrator"
    )
    nat_t: bool = Field(
        True, description="offer NAT-T (used when the peer agrees and a NAT is seen)"
    )
    ike_proposals: list[Proposal] = ["3des-md5-modp1024"]
    ipsec_proposals: list[Proposal] = ["3des-md5"]
    ike_lifetime: int = Field(86400, ge=60)
    ipsec_lifetime: int = Field(28800, ge=60)
    dpd: DpdSettings = DpdSettings()
    nat_keepalive: int = Field(20, ge=0, description="seconds; 0 = off")
    auto_connect: bool = True
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    debug: DebugSettings = DebugSettings()


class VpnSiteNode(NodeBase):
    kind: Literal["vpn-site"]
    implementation: Literal["ours", "strongswan"] = Field(
        "ours",
        description="the software the node runs: ours (labctl's agent) or strongswan "
        "(Debian's charon + swanctl, net-to-net IKEv1 main mode PSK)",
    )
    vpn: VpnSiteSettings
