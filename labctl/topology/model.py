"""The typed lab model: what every other part of labctl reads.

YAML keys are kebab-case (``nat-transparency``); attributes are snake_case. Every model
forbids unknown keys so a typo is an error, not a silently ignored setting.
"""

from __future__ import annotations

import os
import re
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..naming import LAB_NAME_PATTERN
from .errors import type_name
from .files import MAX_SECRET_BYTES, FileReadError, decode_text, read_limited
from .secrets import remember_secret

NAME_PATTERN = LAB_NAME_PATTERN
NODE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
# Linux interface names are at most 15 bytes; eth0 is the management interface.
IFNAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,14}$"
RESERVED_IFNAMES = ("eth0", "lo")


def _not_reserved(name: str) -> str:
    if name in RESERVED_IFNAMES:
        raise ValueError(f"interface name {name!r} is reserved (eth0 is the management interface)")
    return name


LabName = Annotated[str, Field(pattern=NAME_PATTERN, description="lab name: a-z, 0-9, '-'")]
NodeName = Annotated[str, Field(pattern=NODE_NAME_PATTERN)]
IfName = Annotated[str, Field(pattern=IFNAME_PATTERN), AfterValidator(_not_reserved)]

KINDS = ("host", "router", "pat-firewall", "concentrator", "vpn-client")


def _kebab(name: str) -> str:
    return name.replace("_", "-")


class Strict(BaseModel):
    """Base for every topology section: kebab-case keys, unknown keys rejected."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=_kebab,
        populate_by_name=True,
        frozen=True,
    )


class Secret(SecretStr):
    """A secret given inline, or as ``{env: NAME}`` / ``{file: path}``; never printed."""


def _secret_input(value: Any, info: ValidationInfo) -> Any:
    """Resolve the ``env``/``file`` forms at load time; remember every value for redact().
    Errors name what was expected, never the value (pydantic's would echo it)."""
    if isinstance(value, SecretStr):  # re-validating a dumped model (a scenario `set`)
        return value
    if isinstance(value, str):
        return remember_secret(value)
    if isinstance(value, dict):
        return remember_secret(_resolve_secret(value, info))
    raise PydanticCustomError(
        "secret_type",
        f"expected a string, {{env: NAME}} or {{file: PATH}}, got {type_name(value)} "
        "(the value is not shown: it is a secret; quote it to make it a string)",
    )


def _resolve_secret(value: dict, info: ValidationInfo) -> str:
    keys = set(value)
    if keys == {"env"}:
        name = value["env"]
        if not isinstance(name, str) or not name or "=" in name:
            raise PydanticCustomError("secret_form", "env: the name of an environment variable")
        if name not in os.environ:
            raise PydanticCustomError("secret_form", f"environment variable {name!r} is not set")
        return os.environ[name]
    if keys == {"file"}:
        if not isinstance(value["file"], str) or not value["file"]:
            raise PydanticCustomError("secret_form", "file: the path of a file")
        base = (info.context or {}).get("base_dir", Path("."))
        path = Path(base) / value["file"]
        try:
            return decode_text(read_limited(path, MAX_SECRET_BYTES)).strip()
        except FileReadError as exc:
            raise PydanticCustomError(
                "secret_form", f"secret file {path.resolve()}: {exc}"
            ) from None
    raise PydanticCustomError("secret_form", "a secret is a string, {env: NAME} or {file: PATH}")


SecretValue = Annotated[
    Secret, BeforeValidator(_secret_input), Field(json_schema_extra={"format": "password"})
]


# --- interfaces and routes -------------------------------------------------------------


class InterfaceConfig(Strict):
    """A lab interface of a node; the short form is just the address string."""

    ipv4: IPv4Interface | None = Field(None, description="address/prefix, e.g. 10.10.10.2/24")
    mac: str | None = Field(None, pattern=r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$")
    mtu: int | None = Field(None, ge=576, le=9000)

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"ipv4": data}
        if data is None:
            return {}
        return data


_ROUTE_RE = re.compile(r"^\s*(\S+)\s+via\s+(\S+)\s*$")


class Route(Strict):
    """A static route; short form ``"default via 10.10.10.1"`` or ``"10.0.0.0/8 via X"``."""

    dst: IPv4Network
    via: IPv4Address

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        if isinstance(data, str):
            match = _ROUTE_RE.match(data)
            if not match:
                raise ValueError("a route is 'DST via GATEWAY', e.g. 'default via 10.10.10.1'")
            data = {"dst": match.group(1), "via": match.group(2)}
        if isinstance(data, dict) and data.get("dst") == "default":
            data = {**data, "dst": "0.0.0.0/0"}
        return data

    @field_validator("dst", mode="before")
    @classmethod
    def _strict_network(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                IPv4Network(value)
            except ValueError as exc:
                raise ValueError(f"{value!r} is not a network ({exc})") from None
        return value


# --- kind-specific settings ------------------------------------------------------------


class PatTimeouts(Strict):
    """Conntrack timeouts (seconds) the firewall applies to translated flows."""

    udp: int | None = Field(None, ge=1, le=86400, description="UDP, unreplied and replied")
    udp_stream: int | None = Field(None, ge=1, le=86400, description="UDP seen both ways")
    tcp_established: int | None = Field(None, ge=1, le=432000)
    icmp: int | None = Field(None, ge=1, le=3600)


class PatSettings(Strict):
    """PIX-style PAT: ``nat (inside) 1 0 0`` + ``global (outside) 1 interface``."""

    inside: list[IfName] = Field(min_length=1)
    outside: IfName
    timeouts: PatTimeouts = PatTimeouts()
    allow_inbound: bool = Field(
        False, description="forward new connections from outside to inside (default: deny)"
    )
    port_allocation: Literal["preserve", "random"] = Field(
        "preserve",
        description="global ports of new translations: 'preserve' keeps the local port when "
        "it is free (Linux masquerade); 'random' always picks a fresh one (nftables "
        "fully-random), as a PIX does, so a mapping that expired and comes back gets a new port",
    )


Proposal = Annotated[str, Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")]


class PortToggle(Strict):
    enabled: bool = False
    port: int = Field(10000, ge=1, le=65535)


class NatTransparency(Strict):
    """VPN 3000 'NAT Transparency' page; priority is TCP, then NAT-T, then UDP."""

    nat_t: bool = Field(False, description="IPsec over NAT-T (off by default, as on a VPN 3000)")
    ipsec_over_udp: PortToggle = PortToggle()
    ipsec_over_tcp: PortToggle = PortToggle()


class VpnGroup(Strict):
    psk: SecretValue
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
    pfs: bool = False


class VpnUser(Strict):
    password: SecretValue
    group: str


class DpdSettings(Strict):
    interval: int = Field(30, ge=1, description="idle seconds before R-U-THERE")
    retries: int = Field(3, ge=1)
    retry_interval: int = Field(5, ge=1)


class DebugSettings(Strict):
    export_keys: bool = Field(
        False,
        description="LAB ONLY: write IKE and ESP keys in Wireshark's format inside the node "
        "(/var/log/labctl/keys/) so captures can be decrypted",
    )


class ConcentratorSettings(Strict):
    public_interface: IfName
    private_interface: IfName | None = None
    nat_transparency: NatTransparency = NatTransparency()
    groups: dict[str, VpnGroup] = Field(min_length=1)
    users: dict[str, VpnUser] = {}
    dpd: DpdSettings = DpdSettings()
    nat_keepalive: int = Field(20, ge=0, description="seconds; 0 = off")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    debug: DebugSettings = DebugSettings()
    version_string: str = (
        "Cisco Systems, Inc./VPN 3000 Concentrator Version 4.0.1.B built by labctl"
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


class VpnClientSettings(Strict):
    host: IPv4Address
    group: str
    group_password: SecretValue
    user: str
    password: SecretValue
    transparent_tunneling: TransparentTunneling = TransparentTunneling()
    local_lan_access: bool = False
    peer_response_timeout: int = Field(90, ge=5)
    nat_keepalive: int = Field(20, ge=0, description="seconds; 0 = off")
    dpd: DpdSettings = DpdSettings()
    ike_proposals: list[Proposal] = ["3des-md5-modp1024"]
    ipsec_proposals: list[Proposal] = ["3des-md5"]
    auto_connect: bool = True
    client_version: str = Field("3.6.1 (Rel)", description="shown as 'Client Type/Version'")
    client_os: str = "WinNT"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    debug: DebugSettings = DebugSettings()


# --- nodes -------------------------------------------------------------------------------


class NodeBase(Strict):
    kind: str
    group: str | None = Field(None, description="a key of topology.groups to inherit from")
    image: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$",
        description="override the image (default: per kind)",
    )
    interfaces: dict[IfName, InterfaceConfig] = {}
    routes: list[Route] = []
    sysctls: dict[Annotated[str, Field(pattern=r"^net\.[a-z0-9_.\-]+$")], str | int] = {}
    env: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")], str] = {}
    labels: dict[str, str] = {}
    exec: list[str] = Field([], description="commands run in the node once it is configured")

    @field_validator("interfaces", mode="before")
    @classmethod
    def _no_null_interfaces(cls, value: Any) -> Any:
        return {} if value is None else value


class HostNode(NodeBase):
    kind: Literal["host"]


class RouterNode(NodeBase):
    kind: Literal["router"]


class PatFirewallNode(NodeBase):
    kind: Literal["pat-firewall"]
    pat: PatSettings


class ConcentratorNode(NodeBase):
    kind: Literal["concentrator"]
    vpn: ConcentratorSettings


class VpnClientNode(NodeBase):
    kind: Literal["vpn-client"]
    vpn: VpnClientSettings


Node = Annotated[
    HostNode | RouterNode | PatFirewallNode | ConcentratorNode | VpnClientNode,
    Field(discriminator="kind"),
]


# --- links and the lab ------------------------------------------------------------------


class Endpoint(BaseModel):
    model_config = ConfigDict(frozen=True)
    node: str
    interface: str

    def __str__(self) -> str:
        return f"{self.node}:{self.interface}"


def _endpoint(text: str) -> str:
    """'node:interface' where the interface is a name the kernel accepts (it becomes a
    veth's name inside the node: '/', ';', '$(...)' or 16 bytes fail only at `up`)."""
    _node, interface = text.split(":", 1)
    if not re.fullmatch(IFNAME_PATTERN, interface):
        raise ValueError(
            f"interface {interface[:40]!r} is not a Linux interface name (1-15 characters: "
            "letters, digits, '_', '.', '-', starting with a letter)"
        )
    _not_reserved(interface)
    return text


EndpointText = Annotated[str, Field(pattern=r"^[^:\s]+:[^:\s]+$"), AfterValidator(_endpoint)]


class Link(Strict):
    """Two endpoints make a point-to-point link; more make a LAN segment."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")] | None = None
    endpoints: list[EndpointText] = Field(min_length=2)
    mtu: int | None = Field(None, ge=576, le=9000)

    def resolved_endpoints(self) -> list[Endpoint]:
        return [Endpoint(node=n, interface=i) for n, i in (e.split(":", 1) for e in self.endpoints)]


class Topology(Strict):
    # The inheritance layers are merged into the nodes before validation; they are kept
    # out of repr and dumps because they hold raw, unvalidated values (secrets included).
    defaults: dict[str, Any] = Field(
        {}, description="settings every node inherits", exclude=True, repr=False
    )
    kinds: dict[Literal[KINDS], dict[str, Any]] = Field(  # type: ignore[valid-type]
        {}, description="settings every node of a kind inherits", exclude=True, repr=False
    )
    groups: dict[str, dict[str, Any]] = Field(
        {}, description="named setting sets a node joins with 'group:'", exclude=True, repr=False
    )
    nodes: dict[NodeName, Node] = Field(min_length=1)
    links: list[Link] = []


class MgmtSettings(Strict):
    ipv4_subnet: IPv4Network | None = Field(
        None,
        description=(
            "management subnet; it exists only inside the lab's own fabric namespace, so it "
            "must avoid the lab's networks, not the host's (default: the first /24 of "
            "172.30.0.0/16, then 10.254.0.0/16, that overlaps none of them)"
        ),
    )


class LabFile(Strict):
    """The whole topology file."""

    name: LabName
    description: str | None = None
    mgmt: MgmtSettings = MgmtSettings()
    topology: Topology
    expect: list[Expectation] = Field([], description="what must hold once the lab is up")
    scenarios: dict[str, Scenario] = Field({}, description="named sequences of steps")


from .checks_model import Expectation, Scenario  # noqa: E402  (sections defined there)

LabFile.model_rebuild()
