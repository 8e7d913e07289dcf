"""Mode-Config attributes (draft-dukes-ike-mode-cfg, Cisco Unity extensions) as a typed value.

:class:`ModeConfig` is what a concentrator hands a client: address, netmask, DNS/WINS,
banner, split tunnelling, the UDP encapsulation port, backup servers, ...  It converts to and
from attribute lists in both directions, in the forms vpnc insists on (addresses as 4-byte TLVs,
SAVE_PASSWD / PFS / NAT-T port as TV, split-include as n x 14-byte entries).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from .codec import Attribute
from .constants import CfgAttr, NotifyType
from .errors import IkeProtocolError
from .records import evolve

# vpnc's "firewall type" blob it sends in every request (Cisco Integrated Client).
VPNC_FW_TYPE = bytes.fromhex("800100018002000180030002")

# Attributes a client asks for, in vpnc's order (vpnc 0.5.3 do_phase2_config()).
DEFAULT_REQUEST = (
    CfgAttr.INTERNAL_IP4_ADDRESS,
    CfgAttr.INTERNAL_IP4_NETMASK,
    CfgAttr.INTERNAL_IP4_DNS,
    CfgAttr.INTERNAL_IP4_NBNS,
    CfgAttr.UNITY_DEF_DOMAIN,
    CfgAttr.UNITY_FW_TYPE,
    CfgAttr.UNITY_PFS,
    CfgAttr.UNITY_BANNER,
    CfgAttr.UNITY_SAVE_PASSWD,
    CfgAttr.UNITY_SPLIT_INCLUDE,
    CfgAttr.UNITY_SPLIT_DNS,
    CfgAttr.UNITY_DDNS_HOSTNAME,
    CfgAttr.APPLICATION_VERSION,
)


def _ip(data: bytes, attr: int) -> IPv4Address:
    if len(data) != 4:
        raise IkeProtocolError(
            f"mode-config attribute {attr}: address of {len(data)} bytes (need 4)",
            notify=NotifyType.ATTRIBUTES_NOT_SUPPORTED,
        )
    return IPv4Address(data)


def _encode_acl(networks: tuple[IPv4Network, ...]) -> bytes:
    return b"".join(
        n.network_address.packed + n.netmask.packed + struct.pack("!HHH", 0, 0, 0) for n in networks
    )


def _decode_acl(data: bytes, attr: int) -> tuple[IPv4Network, ...]:
    if len(data) % 14:
        raise IkeProtocolError(
            f"mode-config attribute {attr}: {len(data)} bytes is not a multiple of 14",
            notify=NotifyType.PAYLOAD_MALFORMED,
        )
    nets = []
    for i in range(0, len(data), 14):
        addr = IPv4Address(data[i : i + 4])
        mask = IPv4Address(data[i + 4 : i + 8])
        try:
            nets.append(IPv4Network(f"{addr}/{mask}", strict=False))
        except ValueError:
            raise IkeProtocolError(
                f"mode-config attribute {attr}: {mask} is not a netmask",
                notify=NotifyType.PAYLOAD_MALFORMED,
            ) from None
    return tuple(nets)


def _text(value: int | bytes) -> str:
    """A text attribute; C-string NULs at the end (some gateways count them) dropped."""
    if isinstance(value, int):
        return str(value)
    return value.rstrip(b"\x00").decode("utf-8", errors="replace")


@dataclass(frozen=True)
class ModeConfig:
    """Mode-Config settings; ``None`` / empty means "not sent"."""

    address: IPv4Address | None = None
    netmask: IPv4Address | None = None
    dns: tuple[IPv4Address, ...] = ()
    nbns: tuple[IPv4Address, ...] = ()
    address_expiry: int | None = None
    app_version: str | None = None
    banner: str | None = None
    save_password: bool | None = None
    default_domain: str | None = None
    split_dns: tuple[str, ...] = ()
    split_include: tuple[IPv4Network, ...] = ()
    local_lan: tuple[IPv4Network, ...] = ()  # Cisco "split exclude"
    pfs: bool | None = None
    udp_encap_port: int | None = None  # 0x7005: NAT-T / IPsec-over-UDP port
    backup_servers: tuple[str, ...] = ()
    ddns_hostname: str | None = None
    fw_type: bytes | None = field(default=None, repr=False)
    unknown: tuple[Attribute, ...] = ()

    def with_address(
        self, address: str | IPv4Address, netmask: str | IPv4Address | None = None
    ) -> ModeConfig:
        # (an IPv4Address given to IPv4Address() is printed and parsed again: passed through)
        return evolve(
            self,
            address=address if isinstance(address, IPv4Address) else IPv4Address(address),
            netmask=(
                netmask
                if isinstance(netmask, IPv4Address)
                else IPv4Address(netmask)
                if netmask
                else self.netmask
            ),
        )

    # -- encoding ------------------------------------------------------------------------------

    def to_attributes(self, requested: set[int] | None = None) -> tuple[Attribute, ...]:
        """Attributes for a REPLY / SET, in :data:`FIELDS` order.  With ``requested`` (a
        REPLY), only those the peer asked for: an unasked attribute is an error to some
        clients (a strongSwan client logs a failure for each)."""
        out: list[Attribute] = []
        for f in FIELDS:
            value = getattr(self, f.name)
            if value is None or value == ():
                continue  # not set: not sent
            if requested is not None and f.attr not in requested:
                continue
            for one in value if f.repeated else (value,):
                out.append(Attribute(f.attr, f.form.encode(one)))
        return tuple(out)

    @staticmethod
    def from_attributes(attributes: tuple[Attribute, ...]) -> ModeConfig:
        """Parse a REPLY / SET.  Zero-length values (as in a REQUEST) are skipped; attributes
        not in :data:`FIELDS` are kept in ``unknown``."""
        values: dict[str, object] = {}
        repeated: dict[str, list[object]] = {f.name: [] for f in FIELDS if f.repeated}
        unknown: list[Attribute] = []
        for a in attributes:
            if isinstance(a.value, bytes) and not a.value:
                continue
            f = _BY_ATTR.get(a.type)
            if f is None:
                unknown.append(a)
                continue
            try:
                value = f.form.decode(a)
            except ValueError as exc:  # as_int() on an odd-sized value
                raise IkeProtocolError(
                    f"mode-config attribute {a.type}: {exc}", notify=NotifyType.PAYLOAD_MALFORMED
                ) from None
            if f.repeated:
                repeated[f.name].append(value)
            else:
                values[f.name] = value  # the last one wins
        for name, items in repeated.items():
            values[name] = tuple(items)
        return ModeConfig(unknown=tuple(unknown), **values)  # type: ignore[arg-type]


def _port(value: int, attr: int) -> int:
    if not 1 <= value <= 0xFFFF:
        raise IkeProtocolError(
            f"mode-config attribute {attr}: port {value}", notify=NotifyType.PAYLOAD_MALFORMED
        )
    return value


def _need_bytes(a: Attribute) -> bytes:
    if not isinstance(a.value, bytes):
        raise IkeProtocolError(
            f"mode-config attribute {a.type} must be variable-length",
            notify=NotifyType.PAYLOAD_MALFORMED,
        )
    return a.value


@dataclass(frozen=True)
class _Form:
    """How one kind of value travels in an attribute (vpnc insists on these forms)."""

    encode: Callable[[Any], int | bytes]  # an int is sent TV, bytes TLV
    decode: Callable[[Attribute], Any]


_ADDRESS = _Form(lambda v: v.packed, lambda a: _ip(_need_bytes(a), a.type))  # 4-byte TLV
_SECONDS = _Form(lambda v: v.to_bytes(4, "big"), lambda a: a.as_int())  # 4-byte TLV
_TEXT = _Form(lambda v: v.encode(), lambda a: _text(a.value))
_TEXT_LIST = _Form(  # comma-separated
    lambda v: ",".join(v).encode(), lambda a: tuple(s for s in _text(a.value).split(",") if s)
)
_NETWORKS = _Form(_encode_acl, lambda a: _decode_acl(_need_bytes(a), a.type))  # n x 14 bytes
_FLAG = _Form(int, lambda a: bool(a.as_int()))  # TV
_PORT = _Form(lambda v: v, lambda a: _port(a.as_int(), a.type))  # TV
_BLOB = _Form(lambda v: v, _need_bytes)


@dataclass(frozen=True)
class _Field:
    attr: CfgAttr
    name: str  # the ModeConfig field
    form: _Form
    repeated: bool = False  # one attribute per element (DNS, WINS servers)


# THE table of Mode-Config attributes: both directions, and the order a REPLY / SET uses.
FIELDS = (
    _Field(CfgAttr.INTERNAL_IP4_ADDRESS, "address", _ADDRESS),
    _Field(CfgAttr.INTERNAL_IP4_NETMASK, "netmask", _ADDRESS),
    _Field(CfgAttr.INTERNAL_IP4_DNS, "dns", _ADDRESS, repeated=True),
    _Field(CfgAttr.INTERNAL_IP4_NBNS, "nbns", _ADDRESS, repeated=True),
    _Field(CfgAttr.INTERNAL_ADDRESS_EXPIRY, "address_expiry", _SECONDS),
    _Field(CfgAttr.UNITY_BANNER, "banner", _TEXT),
    _Field(CfgAttr.UNITY_SAVE_PASSWD, "save_password", _FLAG),
    _Field(CfgAttr.UNITY_DEF_DOMAIN, "default_domain", _TEXT),
    _Field(CfgAttr.UNITY_SPLIT_DNS, "split_dns", _TEXT_LIST),
    _Field(CfgAttr.UNITY_SPLIT_INCLUDE, "split_include", _NETWORKS),
    _Field(CfgAttr.UNITY_LOCAL_LAN, "local_lan", _NETWORKS),
    _Field(CfgAttr.UNITY_PFS, "pfs", _FLAG),
    _Field(CfgAttr.UNITY_BACKUP_SERVERS, "backup_servers", _TEXT_LIST),
    _Field(CfgAttr.UNITY_DDNS_HOSTNAME, "ddns_hostname", _TEXT),
    _Field(CfgAttr.UNITY_FW_TYPE, "fw_type", _BLOB),
    _Field(CfgAttr.APPLICATION_VERSION, "app_version", _TEXT),
    _Field(CfgAttr.UNITY_NATT_PORT, "udp_encap_port", _PORT),
)
_BY_ATTR: dict[int, _Field] = {f.attr: f for f in FIELDS}


@lru_cache(maxsize=64)  # a pure function of the client's configuration: built once per config
def request_attributes(
    wanted: tuple[int, ...] = DEFAULT_REQUEST,
    *,
    app_version: str | None = None,
    hostname: str | None = None,
    cisco_udp: bool = False,
) -> tuple[Attribute, ...]:
    """A client's REQUEST: empty TLVs for what it wants, plus its version / host name."""
    out: list[Attribute] = []
    version, ddns, fw_type = (
        CfgAttr.APPLICATION_VERSION,
        CfgAttr.UNITY_DDNS_HOSTNAME,
        CfgAttr.UNITY_FW_TYPE,
    )  # read once, not per attribute (enum member reads are slow on 3.11)
    for attr in wanted:
        if attr == version:
            if app_version is not None:
                out.append(Attribute(attr, app_version.encode()))
        elif attr == ddns:
            if hostname is not None:
                out.append(Attribute(attr, hostname.encode()))
        elif attr == fw_type:
            out.append(Attribute(attr, VPNC_FW_TYPE))
        else:
            out.append(Attribute(attr, b""))
    if cisco_udp:
        out.append(Attribute(CfgAttr.UNITY_NATT_PORT, b""))
    return tuple(out)


def network(value: str) -> IPv4Network:
    return ipaddress.IPv4Network(value, strict=False)
