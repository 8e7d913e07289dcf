"""The agent's view of /etc/labctl/vpn.json (rendered by labctl from the topology).

Proposal strings use strongSwan-like names: phase 1 ``3des-md5-modp1024``,
``aes128-sha1-modp1024``, ``aes256-sha256-modp2048``; phase 2 ``3des-md5``, ``aes128-sha1``
(add ``-modp1024`` for PFS). Everything here is plain data; secrets stay out of repr().
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

from ..ike.config import Phase1Proposal, Phase2Proposal
from ..ike.constants import AuthMethod, EspAuth, EspTransform, P1Encryption, P1Hash
from .control import CONFIG_PATH

_P1_CIPHERS = {
    "3des": (P1Encryption.TRIPLE_DES_CBC, None),
    "aes128": (P1Encryption.AES_CBC, 128),
    "aes192": (P1Encryption.AES_CBC, 192),
    "aes256": (P1Encryption.AES_CBC, 256),
}
_P1_HASHES = {"md5": P1Hash.MD5, "sha1": P1Hash.SHA1, "sha256": P1Hash.SHA2_256}
_P2_CIPHERS = {
    "3des": (EspTransform.TRIPLE_DES, None),
    "aes128": (EspTransform.AES_CBC, 128),
    "aes192": (EspTransform.AES_CBC, 192),
    "aes256": (EspTransform.AES_CBC, 256),
}
_P2_HASHES = {"md5": EspAuth.HMAC_MD5, "sha1": EspAuth.HMAC_SHA1, "sha256": EspAuth.HMAC_SHA2_256}
_GROUPS = {"modp768": 1, "modp1024": 2, "modp1536": 5, "modp2048": 14}


class SettingsError(ValueError):
    """A configuration the agent cannot use; the message names the setting."""


def _pick(table: dict[str, Any], name: str, what: str, proposal: str) -> Any:
    try:
        return table[name]
    except KeyError:
        raise SettingsError(
            f"proposal {proposal!r}: unknown {what} {name!r} (known: {', '.join(table)})"
        ) from None


def phase1_proposal(text: str, auth: AuthMethod, lifetime: int) -> Phase1Proposal:
    parts = text.lower().split("-")
    if len(parts) != 3:
        raise SettingsError(f"IKE proposal {text!r}: expected CIPHER-HASH-GROUP")
    encryption, bits = _pick(_P1_CIPHERS, parts[0], "cipher", text)
    return Phase1Proposal(
        encryption,
        bits,
        _pick(_P1_HASHES, parts[1], "hash", text),
        _pick(_GROUPS, parts[2], "DH group", text),
        auth,
        lifetime,
    )


def phase2_proposal(text: str, lifetime: int, pfs_group: int | None = None) -> Phase2Proposal:
    parts = text.lower().split("-")
    if len(parts) not in (2, 3):
        raise SettingsError(f"IPsec proposal {text!r}: expected CIPHER-HASH[-GROUP]")
    transform, bits = _pick(_P2_CIPHERS, parts[0], "cipher", text)
    group = _pick(_GROUPS, parts[2], "PFS group", text) if len(parts) == 3 else pfs_group
    return Phase2Proposal(
        transform, bits, _pick(_P2_HASHES, parts[1], "hash", text), group, lifetime
    )


@dataclass(frozen=True)
class Dpd:
    interval: float = 30.0
    retries: int = 3
    retry_interval: float = 5.0


@dataclass(frozen=True)
class Group:
    name: str
    psk: str = field(repr=False)
    pool: tuple[IPv4Address, IPv4Address]
    netmask: IPv4Address | None
    dns: tuple[IPv4Address, ...]
    wins: tuple[IPv4Address, ...]
    default_domain: str | None
    split_tunnel: tuple[IPv4Network, ...]
    banner: str | None
    ike_proposals: tuple[str, ...]
    ipsec_proposals: tuple[str, ...]
    ike_lifetime: int
    ipsec_lifetime: int
    pfs: bool


@dataclass(frozen=True)
class ConcentratorSettings:
    node: str
    public_address: IPv4Address
    private_address: IPv4Address | None
    nat_t: bool
    ipsec_over_udp: int | None  # port, or None when off
    ipsec_over_tcp: int | None
    groups: dict[str, Group]
    users: dict[str, tuple[str, str]] = field(repr=False)  # user -> (password, group)
    dpd: Dpd
    nat_keepalive: float
    log_level: str
    version_string: str
    export_keys: bool


@dataclass(frozen=True)
class ClientSettings:
    node: str
    host: IPv4Address
    group: str
    group_password: str = field(repr=False)
    user: str
    password: str = field(repr=False)
    transparent_tunneling: bool
    tunneling_mode: str  # "nat-t" | "udp" | "tcp"
    tunneling_port: int
    local_lan_access: bool
    peer_response_timeout: float
    nat_keepalive: float
    dpd: Dpd
    ike_proposals: tuple[str, ...]
    ipsec_proposals: tuple[str, ...]
    auto_connect: bool
    client_version: str
    client_os: str
    log_level: str
    export_keys: bool
    interfaces: dict[str, IPv4Interface]

    @property
    def app_version(self) -> str:
        return f"Cisco Systems VPN Client {self.client_version}:{self.client_os}"


def _dpd(data: dict[str, Any]) -> Dpd:
    return Dpd(
        float(data.get("interval", 30)),
        int(data.get("retries", 3)),
        float(data.get("retry_interval", 5)),
    )


def _interface_address(interfaces: dict[str, str], name: str | None) -> IPv4Address | None:
    if name is None:
        return None
    if name not in interfaces:
        raise SettingsError(f"interface {name!r} has no address in this node")
    return IPv4Interface(interfaces[name]).ip


def load_settings(path: str | Path = CONFIG_PATH) -> ConcentratorSettings | ClientSettings:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SettingsError(f"{path}: {exc}") from None
    try:
        return parse_settings(data)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, SettingsError):
            raise SettingsError(f"{path}: {exc}") from None
        raise SettingsError(f"{path}: missing or bad setting: {exc}") from None


def parse_settings(data: dict[str, Any]) -> ConcentratorSettings | ClientSettings:
    vpn = data["vpn"]
    interfaces = data.get("interfaces", {})
    debug = vpn.get("debug") or {}
    if data["kind"] == "concentrator":
        nat = vpn.get("nat_transparency") or {}
        udp, tcp = nat.get("ipsec_over_udp") or {}, nat.get("ipsec_over_tcp") or {}
        groups = {}
        for name, g in vpn["groups"].items():
            first, last = g["pool_range"]
            groups[name] = Group(
                name=name,
                psk=g["psk"],
                pool=(IPv4Address(first), IPv4Address(last)),
                netmask=IPv4Address(g["netmask"]) if g.get("netmask") else None,
                dns=tuple(IPv4Address(a) for a in g.get("dns") or []),
                wins=tuple(IPv4Address(a) for a in g.get("wins") or []),
                default_domain=g.get("default_domain"),
                split_tunnel=tuple(IPv4Network(n) for n in g.get("split_tunnel") or []),
                banner=g.get("banner"),
                ike_proposals=tuple(g["ike_proposals"]),
                ipsec_proposals=tuple(g["ipsec_proposals"]),
                ike_lifetime=int(g["ike_lifetime"]),
                ipsec_lifetime=int(g["ipsec_lifetime"]),
                pfs=bool(g.get("pfs")),
            )
        return ConcentratorSettings(
            node=data["node"],
            public_address=_interface_address(interfaces, vpn["public_interface"]),
            private_address=_interface_address(interfaces, vpn.get("private_interface")),
            nat_t=bool(nat.get("nat_t")),
            ipsec_over_udp=int(udp["port"]) if udp.get("enabled") else None,
            ipsec_over_tcp=int(tcp["port"]) if tcp.get("enabled") else None,
            groups=groups,
            users={u: (v["password"], v["group"]) for u, v in (vpn.get("users") or {}).items()},
            dpd=_dpd(vpn.get("dpd") or {}),
            nat_keepalive=float(vpn.get("nat_keepalive", 20)),
            log_level=vpn.get("log_level", "info"),
            version_string=vpn.get("version_string", ""),
            export_keys=bool(debug.get("export_keys")),
        )
    if data["kind"] == "vpn-client":
        tt = vpn.get("transparent_tunneling") or {}
        return ClientSettings(
            node=data["node"],
            host=IPv4Address(vpn["host"]),
            group=vpn["group"],
            group_password=vpn["group_password"],
            user=vpn["user"],
            password=vpn["password"],
            transparent_tunneling=bool(tt.get("enabled", True)),
            tunneling_mode=tt.get("mode", "nat-t"),
            tunneling_port=int(tt.get("port", 10000)),
            local_lan_access=bool(vpn.get("local_lan_access")),
            peer_response_timeout=float(vpn.get("peer_response_timeout", 90)),
            nat_keepalive=float(vpn.get("nat_keepalive", 20)),
            dpd=_dpd(vpn.get("dpd") or {}),
            ike_proposals=tuple(vpn["ike_proposals"]),
            ipsec_proposals=tuple(vpn["ipsec_proposals"]),
            auto_connect=bool(vpn.get("auto_connect", True)),
            client_version=vpn.get("client_version", "3.6.1 (Rel)"),
            client_os=vpn.get("client_os", "WinNT"),
            log_level=vpn.get("log_level", "info"),
            export_keys=bool(debug.get("export_keys")),
            interfaces={n: IPv4Interface(a) for n, a in interfaces.items()},
        )
    raise SettingsError(f"kind {data['kind']!r} has no VPN agent")


@dataclass(frozen=True)
class Listener:
    """A socket the agent binds for these settings (what `vpn service check` probes)."""

    protocol: str  # "udp" | "tcp"
    address: str
    port: int
    purpose: str

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.protocol, self.address, self.port)


def listeners(settings: ConcentratorSettings | ClientSettings) -> list[Listener]:
    """The sockets the agent opens for these settings (mirrors the agents' constructors)."""
    if isinstance(settings, ConcentratorSettings):
        address = str(settings.public_address)
        found = [
            Listener("udp", address, 500, "IKE"),
            Listener("udp", address, 4500, "NAT-T"),
        ]
        if settings.ipsec_over_udp:
            found.append(Listener("udp", address, settings.ipsec_over_udp, "IPsec over UDP"))
        if settings.ipsec_over_tcp:
            found.append(Listener("tcp", address, settings.ipsec_over_tcp, "IPsec over TCP"))
        return found
    found = [Listener("udp", "0.0.0.0", 500, "IKE"), Listener("udp", "0.0.0.0", 4500, "NAT-T")]
    if settings.tunneling_mode in ("udp", "auto"):
        found.append(Listener("udp", "0.0.0.0", settings.tunneling_port, "IPsec over UDP"))
    return found


def check_proposals(settings: ConcentratorSettings | ClientSettings) -> None:
    """Parse every proposal string (the agent does so only when it builds its policy)."""
    groups = settings.groups.values() if isinstance(settings, ConcentratorSettings) else [settings]
    for group in groups:
        for text in group.ike_proposals:
            phase1_proposal(text, AuthMethod.PSK, 86400)
        for text in group.ipsec_proposals:
            phase2_proposal(text, 28800)
