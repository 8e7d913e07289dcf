"""The `vpn-client` node model: a Cisco VPN Client's connection entry."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Literal

from pydantic import Field

from ...topology.base import NodeBase, SecretValue, Strict
from ..vpn_settings import (
    AuthMode,
    DebugSettings,
    DpdSettings,
    IkeFragmentation,
    NattVersionName,
    Proposal,
    natt_versions_field,
)


class TransparentTunneling(Strict):
    enabled: bool = True
    mode: Literal["nat-t", "udp", "auto", "tcp"] = Field(
        "nat-t",
        description="nat-t: NAT-T only (as vpnc); udp: Cisco IPsec over UDP only; auto: the "
        "Cisco VPN Client's 'IPsec over UDP (NAT / PAT)': NAT-T when the concentrator does "
        "it, else its IPsec-over-UDP port, else plain ESP; tcp: IPsec over TCP",
    )
    port: int = Field(10000, ge=1, le=65535)
    nat_t_versions: list[NattVersionName] | None = natt_versions_field()


class VpnClientSettings(Strict):
    host: IPv4Address
    group: str
    auth: AuthMode = Field(
        "psk",
        description="the connection entry's Authentication: psk (Group Authentication); "
        "certificate (Certificate Authentication: main mode, RSA signatures, a certificate "
        "labctl issues with CN = node, OU = group, then XAUTH); hybrid (Mutual Group "
        "Authentication: the concentrator's certificate, then XAUTH)",
    )
    group_password: SecretValue | None = Field(None, description="auth: psk only")
    certificate_ca: str = Field(
        "lab",
        pattern=r"^[a-z][a-z0-9-]{0,30}$",
        description="the client's certificate store: with auth: certificate the CA that "
        "issues its certificate, with auth: hybrid the root it trusts to check the "
        "concentrator's. 'lab': the lab CA (labctl makes it at `up`); any other name: a CA "
        "of that name labctl makes and the other end does not trust (to see a refusal)",
    )
    user: str
    password: SecretValue
    transparent_tunneling: TransparentTunneling = TransparentTunneling()
    local_lan_access: bool = False
    mtu: int | None = Field(
        None,
        ge=576,
        le=1500,
        description="the VPN adapter's MTU (the Cisco client's 'MTU' setting, 1300 on "
        "theirs); packets are fragmented before encapsulation to fit it. None: 1400 (1300 "
        "for IPsec over TCP)",
    )
    peer_response_timeout: int = Field(90, ge=5)
    nat_keepalive: int = Field(20, ge=0, description="seconds; 0 = off")
    dpd: DpdSettings = DpdSettings()
    ike_proposals: list[Proposal] = ["3des-md5-modp1024"]
    ipsec_proposals: list[Proposal] = ["3des-md5"]
    ike_lifetime: int = Field(
        86400,
        ge=60,
        description="phase-1 lifetime offered, seconds (a shorter one a "
        "concentrator answers with RESPONDER-LIFETIME wins; the client rekeys before either ends)",
    )
    ipsec_lifetime: int = Field(
        28800, ge=60, description="phase-2 lifetime offered, seconds (rekeyed before it ends)"
    )
    ipsec_lifetime_kb: int | None = Field(
        None,
        ge=10,
        description="kilobytes an IPsec SA may carry each way (rekeyed at 90 %); "
        "none: no limit (a concentrator's shorter limit still applies)",
    )
    ike_fragmentation: IkeFragmentation = IkeFragmentation(enabled=False)  # as vpnc: off
    auto_connect: bool = True
    client_version: str = Field("3.6.1 (Rel)", description="shown as 'Client Type/Version'")
    client_os: str = "WinNT"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    debug: DebugSettings = DebugSettings()


class VpnClientNode(NodeBase):
    kind: Literal["vpn-client"]
    implementation: Literal["ours", "strongswan", "vpnc"] = Field(
        "ours",
        description="the software the node runs: ours (labctl's agent), strongswan "
        "(Debian's charon + swanctl) or vpnc (Debian's vpnc)",
    )
    vpn: VpnClientSettings
