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
from typing import TYPE_CHECKING, Any, TypeAlias

from ..ike.config import Phase1Proposal, Phase2Proposal
from ..ike.constants import AuthMethod, EspAuth, EspTransform, P1Encryption, P1Hash
from ..ike.vendor import NattVersion
from .control import CONFIG_PATH

if TYPE_CHECKING:
    from .fleet_settings import FleetSettings

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


AUTH_MODES = ("psk", "certificate", "hybrid")


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


def phase2_proposal(
    text: str, lifetime: int, pfs_group: int | None = None, lifetime_kb: int | None = None
) -> Phase2Proposal:
    parts = text.lower().split("-")
    if len(parts) not in (2, 3):
        raise SettingsError(f"IPsec proposal {text!r}: expected CIPHER-HASH[-GROUP]")
    transform, bits = _pick(_P2_CIPHERS, parts[0], "cipher", text)
    group = _pick(_GROUPS, parts[2], "PFS group", text) if len(parts) == 3 else pfs_group
    return Phase2Proposal(
        transform, bits, _pick(_P2_HASHES, parts[1], "hash", text), group, lifetime, lifetime_kb
    )


@dataclass(frozen=True)
class Dpd:
    interval: float
    retries: int
    retry_interval: float


@dataclass(frozen=True)
class Group:
    name: str
    auth: str  # "psk" | "certificate" | "hybrid"
    psk: str = field(repr=False)  # "" unless auth is psk
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
    ipsec_lifetime_kb: int | None
    pfs: bool


@dataclass(frozen=True)
class LanToLan:
    """A concentrator's LAN-to-LAN entry: the peer (by address) and its networks."""

    name: str
    peer: IPv4Address
    psk: str = field(repr=False)
    local_networks: tuple[IPv4Network, ...]
    remote_networks: tuple[IPv4Network, ...]
    ike_proposals: tuple[str, ...]
    ipsec_proposals: tuple[str, ...]
    ike_lifetime: int
    ipsec_lifetime: int
    nat_t: bool


@dataclass(frozen=True)
class ConcentratorSettings:
    node: str
    public_address: IPv4Address
    private_address: IPv4Address | None
    fragmentation_policy: str  # "fragment-encapsulated" | "pmtud" | "clear-df"
    nat_t: bool
    ipsec_over_udp: int | None  # port, or None when off
    ipsec_over_tcp: int | None
    groups: dict[str, Group]
    users: dict[str, tuple[str, str]] = field(repr=False)  # user -> (password, group)
    lan_to_lan: dict[str, LanToLan]
    dpd: Dpd
    nat_keepalive: float
    fragmentation: int | None  # Cisco IKE fragmentation: the size above which; None: off
    initiate_rekeys: bool
    rekey_late_clients: bool
    log_level: str
    version_string: str
    export_keys: bool
    natt_versions: tuple[str, ...] | None = None  # NattVersion values; None: the engine's
    max_sessions: int = 100  # the Concurrent Sessions Limit (the seed's VPN 3000: 100)


@dataclass(frozen=True)
class ClientSettings:
    node: str
    host: IPv4Address
    group: str
    auth: str  # "psk" | "certificate" | "hybrid"
    group_password: str = field(repr=False)  # "" unless auth is psk
    user: str
    password: str = field(repr=False)
    transparent_tunneling: bool
    tunneling_mode: str  # "nat-t" | "udp" | "tcp"
    tunneling_port: int
    local_lan_access: bool
    mtu: int | None
    peer_response_timeout: float
    nat_keepalive: float
    dpd: Dpd
    ike_proposals: tuple[str, ...]
    ipsec_proposals: tuple[str, ...]
    ike_lifetime: int
    ipsec_lifetime: int
    ipsec_lifetime_kb: int | None
    fragmentation: int | None  # Cisco IKE fragmentation: the size above which; None: off
    auto_connect: bool
    client_version: str
    client_os: str
    log_level: str
    export_keys: bool
    interfaces: dict[str, IPv4Interface]
    natt_versions: tuple[str, ...] | None = None  # NattVersion values; None: the engine's

    @property
    def app_version(self) -> str:
        return f"Cisco Systems VPN Client {self.client_version}:{self.client_os}"


@dataclass(frozen=True)
class SiteSettings:
    """A `vpn-site`: the branch end of a LAN-to-LAN tunnel (our agent as initiator)."""

    node: str
    peer: IPv4Address
    psk: str = field(repr=False)
    local_networks: tuple[IPv4Network, ...]
    remote_networks: tuple[IPv4Network, ...]
    nat_t: bool
    ike_proposals: tuple[str, ...]
    ipsec_proposals: tuple[str, ...]
    ike_lifetime: int
    ipsec_lifetime: int
    dpd: Dpd
    nat_keepalive: float
    auto_connect: bool
    log_level: str
    export_keys: bool
    interfaces: dict[str, IPv4Interface]

    @property
    def lan_address(self) -> IPv4Address | None:
        """Our address on a local network: the source of what the site itself sends."""
        for interface in self.interfaces.values():
            if any(interface.ip in n for n in self.local_networks):
                return interface.ip
        return None


AgentSettings: TypeAlias = "ConcentratorSettings | ClientSettings | SiteSettings | FleetSettings"


class _Section:
    """One mapping of vpn.json, read strictly: labctl renders every setting from the
    topology model (where the defaults live), so a missing or mistyped key is an error
    naming it -- never a default made up here that could drift from the model's."""

    def __init__(self, data: Any, path: str):
        if not isinstance(data, dict):
            raise SettingsError(f"setting {path}: expected a mapping, got {_type(data)}")
        self.data = data
        self.path = path

    def _name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str) -> Any:
        if key not in self.data:
            raise SettingsError(f"missing setting {self._name(key)}")
        return self.data[key]

    def _typed(self, key: str, types: type | tuple[type, ...], what: str) -> Any:
        value = self.raw(key)
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in _all(types)):
            raise SettingsError(f"setting {self._name(key)}: expected {what}, got {_type(value)}")
        return value

    def section(self, key: str) -> _Section:
        return _Section(self.raw(key), self._name(key))

    def sections(self, key: str) -> dict[str, _Section]:
        """A mapping of named mappings (groups, users)."""
        items = self.section(key)
        return {name: items.section(name) for name in items.data}

    def text(self, key: str) -> str:
        return self._typed(key, str, "a string")

    def optional_text(self, key: str) -> str | None:
        return None if self.raw(key) is None else self.text(key)

    def flag(self, key: str) -> bool:
        return self._typed(key, bool, "true or false")

    def integer(self, key: str) -> int:
        return self._typed(key, int, "a whole number")

    def optional_integer(self, key: str) -> int | None:
        return None if self.raw(key) is None else self.integer(key)

    def number(self, key: str) -> float:
        return float(self._typed(key, (int, float), "a number"))

    def texts(self, key: str) -> tuple[str, ...]:
        values = self._typed(key, list, "a list")
        if not all(isinstance(v, str) for v in values):
            raise SettingsError(f"setting {self._name(key)}: expected a list of strings")
        return tuple(values)


def _all(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _type(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _dpd(section: _Section) -> Dpd:
    return Dpd(
        section.number("interval"), section.integer("retries"), section.number("retry_interval")
    )


def _port_if_enabled(toggle: _Section) -> int | None:
    port = toggle.integer("port")  # read either way: the file must be complete
    return port if toggle.flag("enabled") else None


def _interface_address(interfaces: dict[str, str], name: str | None) -> IPv4Address | None:
    if name is None:
        return None
    if name not in interfaces:
        raise SettingsError(f"interface {name!r} has no address in this node")
    return IPv4Interface(interfaces[name]).ip


def _required_address(interfaces: dict[str, str], name: str) -> IPv4Address:
    address = _interface_address(interfaces, name)
    assert address is not None  # _interface_address returns None only for no name
    return address


def load_settings(path: str | Path = CONFIG_PATH) -> AgentSettings:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SettingsError(f"{path}: {exc}") from None
    try:
        return parse_settings(data)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, SettingsError):
            raise SettingsError(f"{path}: {exc}") from None
        raise SettingsError(f"{path}: bad setting: {exc}") from None


def parse_settings(data: Any) -> AgentSettings:
    top = _Section(data, "")
    kind = top.text("kind")
    if kind == "concentrator":
        return _concentrator(top)
    if kind == "vpn-client":
        return _client(top)
    if kind == "vpn-site":
        return _site(top)
    if kind == "vpn-fleet":
        from .fleet_settings import parse_fleet  # imports this module

        return parse_fleet(_client(top), top.section("vpn").section("fleet"))
    raise SettingsError(f"kind {kind!r} has no VPN agent")


def _interfaces(top: _Section) -> dict[str, str]:
    interfaces = top.section("interfaces")
    return {name: interfaces.text(name) for name in interfaces.data}


def _concentrator(top: _Section) -> ConcentratorSettings:
    vpn = top.section("vpn")
    interfaces = _interfaces(top)
    nat = vpn.section("nat_transparency")
    udp, tcp = nat.section("ipsec_over_udp"), nat.section("ipsec_over_tcp")
    groups = {}
    for name, g in vpn.sections("groups").items():
        pool = g.texts("pool_range")
        if len(pool) != 2:
            raise SettingsError(f"setting {g.path}.pool_range: expected [FIRST, LAST]")
        netmask = g.optional_text("netmask")
        groups[name] = Group(
            name=name,
            auth=_choice(g, "auth", AUTH_MODES),
            psk=g.optional_text("psk") or "",
            pool=(IPv4Address(pool[0]), IPv4Address(pool[1])),
            netmask=IPv4Address(netmask) if netmask else None,
            dns=tuple(IPv4Address(a) for a in g.texts("dns")),
            wins=tuple(IPv4Address(a) for a in g.texts("wins")),
            default_domain=g.optional_text("default_domain"),
            split_tunnel=tuple(IPv4Network(n) for n in g.texts("split_tunnel")),
            banner=g.optional_text("banner"),
            ike_proposals=g.texts("ike_proposals"),
            ipsec_proposals=g.texts("ipsec_proposals"),
            ike_lifetime=g.integer("ike_lifetime"),
            ipsec_lifetime=g.integer("ipsec_lifetime"),
            ipsec_lifetime_kb=g.optional_integer("ipsec_lifetime_kb"),
            pfs=g.flag("pfs"),
        )
    users = {
        name: (u.text("password"), u.text("group")) for name, u in vpn.sections("users").items()
    }
    lan_to_lan = {
        name: LanToLan(
            name=name,
            peer=IPv4Address(e.text("peer")),
            psk=e.text("psk"),
            local_networks=_networks(e, "local_networks"),
            remote_networks=_networks(e, "remote_networks"),
            ike_proposals=e.texts("ike_proposals"),
            ipsec_proposals=e.texts("ipsec_proposals"),
            ike_lifetime=e.integer("ike_lifetime"),
            ipsec_lifetime=e.integer("ipsec_lifetime"),
            nat_t=e.flag("nat_t"),
        )
        for name, e in vpn.sections("lan_to_lan").items()
    }
    return ConcentratorSettings(
        node=top.text("node"),
        public_address=_required_address(interfaces, vpn.text("public_interface")),
        private_address=_interface_address(interfaces, vpn.optional_text("private_interface")),
        fragmentation_policy=_choice(
            vpn, "fragmentation_policy", ("fragment-encapsulated", "pmtud", "clear-df")
        ),
        nat_t=nat.flag("nat_t"),
        ipsec_over_udp=_port_if_enabled(udp),
        ipsec_over_tcp=_port_if_enabled(tcp),
        groups=groups,
        users=users,
        lan_to_lan=lan_to_lan,
        dpd=_dpd(vpn.section("dpd")),
        nat_keepalive=vpn.number("nat_keepalive"),
        fragmentation=_fragmentation(vpn.section("ike_fragmentation")),
        initiate_rekeys=vpn.flag("initiate_rekeys"),
        rekey_late_clients=vpn.flag("rekey_late_clients"),
        log_level=vpn.text("log_level"),
        version_string=vpn.text("version_string"),
        export_keys=vpn.section("debug").flag("export_keys"),
        natt_versions=_natt_versions(nat),
        max_sessions=vpn.integer("max_sessions"),
    )


def natt_versions_of(
    names: tuple[str, ...] | None, default: tuple[NattVersion, ...]
) -> tuple[NattVersion, ...]:
    """The engine's ``natt_versions`` for the settings' list (none: the config's default)."""
    return default if names is None else tuple(NattVersion(n) for n in names)


NATT_VERSION_NAMES = ("rfc3947", "draft-03", "draft-02n", "draft-02", "draft-01", "draft-00")


def _natt_versions(section: _Section) -> tuple[str, ...] | None:
    """`nat_t_versions`: null means the engine's default list (required, as every setting)."""
    if section.raw("nat_t_versions") is None:
        return None
    versions = section.texts("nat_t_versions")
    for value in versions:
        if value not in NATT_VERSION_NAMES:
            raise SettingsError(
                f"setting {section._name('nat_t_versions')}: {value!r} is not one of "
                + ", ".join(NATT_VERSION_NAMES)
            )
    return versions


def _fragmentation(section: _Section) -> int | None:
    size = section.integer("size")
    return size if section.flag("enabled") else None


def _client(top: _Section) -> ClientSettings:
    vpn = top.section("vpn")
    tt = vpn.section("transparent_tunneling")
    return ClientSettings(
        node=top.text("node"),
        host=IPv4Address(vpn.text("host")),
        group=vpn.text("group"),
        auth=_choice(vpn, "auth", AUTH_MODES),
        group_password=vpn.optional_text("group_password") or "",
        user=vpn.text("user"),
        password=vpn.text("password"),
        transparent_tunneling=tt.flag("enabled"),
        tunneling_mode=tt.text("mode"),
        tunneling_port=tt.integer("port"),
        local_lan_access=vpn.flag("local_lan_access"),
        mtu=vpn.optional_integer("mtu"),
        peer_response_timeout=vpn.number("peer_response_timeout"),
        nat_keepalive=vpn.number("nat_keepalive"),
        dpd=_dpd(vpn.section("dpd")),
        ike_proposals=vpn.texts("ike_proposals"),
        ipsec_proposals=vpn.texts("ipsec_proposals"),
        ike_lifetime=vpn.integer("ike_lifetime"),
        ipsec_lifetime=vpn.integer("ipsec_lifetime"),
        ipsec_lifetime_kb=vpn.optional_integer("ipsec_lifetime_kb"),
        fragmentation=_fragmentation(vpn.section("ike_fragmentation")),
        auto_connect=vpn.flag("auto_connect"),
        client_version=vpn.text("client_version"),
        client_os=vpn.text("client_os"),
        log_level=vpn.text("log_level"),
        export_keys=vpn.section("debug").flag("export_keys"),
        interfaces={n: IPv4Interface(a) for n, a in _interfaces(top).items()},
        natt_versions=_natt_versions(tt),
    )


def _choice(section: _Section, key: str, choices: tuple[str, ...]) -> str:
    value = section.text(key)
    if value not in choices:
        raise SettingsError(
            f"setting {section._name(key)}: {value!r} is not one of {', '.join(choices)}"
        )
    return value


def _networks(section: _Section, key: str) -> tuple[IPv4Network, ...]:
    return tuple(IPv4Network(n) for n in section.texts(key))


def _site(top: _Section) -> SiteSettings:
    vpn = top.section("vpn")
    return SiteSettings(
        node=top.text("node"),
        peer=IPv4Address(vpn.text("peer")),
        psk=vpn.text("psk"),
        local_networks=_networks(vpn, "local_networks"),
        remote_networks=_networks(vpn, "remote_networks"),
        nat_t=vpn.flag("nat_t"),
        ike_proposals=vpn.texts("ike_proposals"),
        ipsec_proposals=vpn.texts("ipsec_proposals"),
        ike_lifetime=vpn.integer("ike_lifetime"),
        ipsec_lifetime=vpn.integer("ipsec_lifetime"),
        dpd=_dpd(vpn.section("dpd")),
        nat_keepalive=vpn.number("nat_keepalive"),
        auto_connect=vpn.flag("auto_connect"),
        log_level=vpn.text("log_level"),
        export_keys=vpn.section("debug").flag("export_keys"),
        interfaces={n: IPv4Interface(a) for n, a in _interfaces(top).items()},
    )


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


def listeners(settings: AgentSettings) -> list[Listener]:
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
    if not isinstance(settings, ClientSettings | SiteSettings):
        return []  # a fleet binds its members' addresses, which it adds itself at start
    found = [Listener("udp", "0.0.0.0", 500, "IKE"), Listener("udp", "0.0.0.0", 4500, "NAT-T")]
    if isinstance(settings, ClientSettings) and settings.tunneling_mode in ("udp", "auto"):
        found.append(Listener("udp", "0.0.0.0", settings.tunneling_port, "IPsec over UDP"))
    return found


def check_proposals(settings: AgentSettings) -> None:
    """Parse every proposal string (the agent does so only when it builds its policy)."""
    groups: list[Any] = [settings]
    if isinstance(settings, ConcentratorSettings):
        groups = [*settings.groups.values(), *settings.lan_to_lan.values()]
    for group in groups:
        for text in group.ike_proposals:
            phase1_proposal(text, AuthMethod.PSK, 86400)
        for text in group.ipsec_proposals:
            phase2_proposal(text, 28800)
