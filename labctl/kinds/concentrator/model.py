"""The `concentrator` node model: a VPN 3000's groups, users, pools and NAT transparency."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Literal

from pydantic import Field

from ...topology.base import IfName, NodeBase, SecretValue, Strict
from ..vpn_settings import (
    AuthMode,
    DebugSettings,
    DpdSettings,
    IkeFragmentation,
    NattVersionName,
    Proposal,
    natt_versions_field,
)


class PortToggle(Strict):
    enabled: bool = False
    port: int = Field(10000, ge=1, le=65535)


class NatTransparency(Strict):
    """VPN 3000 'NAT Transparency' page; priority is TCP, then NAT-T, then UDP."""

    nat_t: bool = Field(False, description="IPsec over NAT-T (off by default, as on a VPN 3000)")
    nat_t_versions: list[NattVersionName] | None = natt_versions_field()
    ipsec_over_udp: PortToggle = PortToggle()
    ipsec_over_tcp: PortToggle = PortToggle()


class VpnGroup(Strict):
    auth: AuthMode = Field(
        "psk",
        description="how this group's clients authenticate: psk (the group password, "
        "then XAUTH); certificate (RSA signatures with certificates of the lab CA, which "
        "labctl makes at `up`; a client's certificate OU names its group); hybrid (the "
        "concentrator's certificate, the client known by XAUTH only)",
    )
    psk: SecretValue | None = Field(None, description="the group password (auth: psk only)")
    pool: str = Field(description="address pool: 'FIRST-LAST' or a network")
    netmask: IPv4Address | None = None
    dns: list[IPv4Address] = []
    wins: list[IPv4Address] = []
    default_domain: str | None = None
    split_tunnel: list[IPv4Network] = Field(
        [], description="networks tunnelled to this group; empty = tunnel everything"
    )
    banner: str | None = None
    ike_proposals: list[Proposal] = ["3des-md5-modp1024", "aes128-sha1-modp1024"]
    ipsec_proposals: list[Proposal] = ["3des-md5", "aes128-sha1"]
    ike_lifetime: int = Field(86400, ge=60)
    ipsec_lifetime: int = Field(28800, ge=60)
    ipsec_lifetime_kb: int | None = Field(
        None, ge=10, description="kilobytes an IPsec SA may carry each way; none: no limit"
    )
    pfs: bool = False


class VpnUser(Strict):
    password: SecretValue
    group: str


class LanToLan(Strict):
    """VPN 3000 'Configuration | System | Tunneling Protocols | IPsec | LAN-to-LAN': one
    site-to-site tunnel to a peer address (main mode, pre-shared key, network lists)."""

    peer: IPv4Address = Field(description="the peer's public address (its PAT's outside address)")
    psk: SecretValue
    local_networks: list[IPv4Network] = Field(min_length=1, description="our side's networks")
    remote_networks: list[IPv4Network] = Field(min_length=1, description="the peer's networks")
    ike_proposals: list[Proposal] = ["3des-md5-modp1024"]
    ipsec_proposals: list[Proposal] = ["3des-md5"]
    ike_lifetime: int = Field(86400, ge=60)
    ipsec_lifetime: int = Field(28800, ge=60)
    nat_t: bool = Field(
        False,
        description="'IPsec NAT-T' of this LAN-to-LAN entry, separate from the remote-access "
        "NAT Transparency box (off by default)",
    )


FragmentationPolicy = Literal["fragment-encapsulated", "pmtud", "clear-df"]


class ConcentratorSettings(Strict):
    public_interface: IfName
    private_interface: IfName | None = None
    fragmentation_policy: FragmentationPolicy = Field(
        "fragment-encapsulated",
        description="the public interface's Fragmentation Policy (VPN 3000): "
        "'fragment-encapsulated' = do not fragment prior to IPsec encapsulation, fragment "
        "the encapsulated packet at the interface (the default); 'pmtud' = fragment prior "
        "to encapsulation with path MTU discovery (ICMP 'fragmentation needed' to a sender "
        "that set DF); 'clear-df' = clear DF, then fragment prior to encapsulation",
    )
    nat_transparency: NatTransparency = NatTransparency()
    groups: dict[str, VpnGroup] = {}
    users: dict[str, VpnUser] = {}
    lan_to_lan: dict[str, LanToLan] = Field(
        {}, description="LAN-to-LAN connections by name (each with its own NAT-T switch)"
    )
    dpd: DpdSettings = DpdSettings()
    nat_keepalive: int = Field(20, ge=0, description="seconds; 0 = off")
    ike_fragmentation: IkeFragmentation = IkeFragmentation()  # as the seed's VPN 3000: on
    initiate_rekeys: bool = Field(
        False,
        description="rekey phase 2 on the concentrator's own lifetime (at 80 %, before a "
        "client's 90 %), as strongSwan does; off: clients rekey, as with a VPN 3000",
    )
    rekey_late_clients: bool = Field(
        False,
        description="quirk for vpnc clients, with initiate-rekeys off: rekey phase 2 at 95 % "
        "of the lifetime when the client has not rekeyed by then (vpnc renews phase 2 only "
        "after the gateway's Delete at the end, and then seals it with the old SA's keys; "
        "it answers a gateway's quick mode correctly). A strongSwan concentrator does this "
        "anyway",
    )
    max_sessions: int = Field(
        100,
        ge=1,
        le=10000,
        description="'Concurrent Sessions Limit': remote-access and LAN-to-LAN sessions at "
        "once; a client beyond it is refused at Mode-Config (no address) and the log says "
        "why. The seed's VPN 3000 shows 100 (a 3005/3015); a 3080 allows 10000. Our "
        "concentrator only: charon's ikesa_limit counts IKE SAs (a phase-1 rekey's too), "
        "so setting it on a strongSwan gateway is a validate error",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    debug: DebugSettings = DebugSettings()
    version_string: str = (
        "Cisco Systems, Inc./VPN 3000 Concentrator Version 4.0.1.B built by labctl"
    )


class ConcentratorNode(NodeBase):
    kind: Literal["concentrator"]
    implementation: Literal["ours", "strongswan"] = Field(
        "ours",
        description="the software the node runs: ours (labctl's agent) or strongswan "
        "(Debian's charon + swanctl)",
    )
    vpn: ConcentratorSettings


def parse_pool(text: str) -> tuple[IPv4Address, IPv4Address]:
    """'40.1.1.1-40.1.1.254' or '40.1.1.0/24' -> (first, last) usable addresses."""
    if "-" in text:
        first_text, last_text = (part.strip() for part in text.split("-", 1))
        first, last = IPv4Address(first_text), IPv4Address(last_text)
    else:
        network = IPv4Network(text, strict=True)
        hosts = list(network.hosts()) if network.num_addresses > 2 else list(network)
        first, last = hosts[0], hosts[-1]
    if int(last) < int(first):
        raise ValueError(f"pool {text!r} ends before it starts")
    return first, last
