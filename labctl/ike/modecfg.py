"""Mode-Config attributes (draft-dukes-ike-mode-cfg, Cisco Unity extensions) as a typed value.

:class:`ModeConfig` is what a concentrator hands a client: address, netmask, DNS/WINS,
banner, split tunnelling, the UDP encapsulation port, backup servers, ...  It converts to and
from attribute lists in both directions, in the forms vpnc insists on (addresses as 4-byte TLVs,
SAVE_PASSWD / PFS / NAT-T port as TV, split-include as n x 14-byte entries).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network

from .codec import Attribute
from .constants import CfgAttr, NotifyType
from .errors import IkeProtocolError

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

    def with_address(self, address: str | IPv4Address, netmask: str | None = None) -> ModeConfig:
        return replace(
            self,
            address=IPv4Address(address),
            netmask=IPv4Address(netmask) if netmask else self.netmask,
        )

    # -- encoding ------------------------------------------------------------------------------

    def to_attributes(self, requested: set[int] | None = None) -> tuple[Attribute, ...]:
        """Attributes for a REPLY / SET.  With ``requested``, only those the peer asked for
        (plus APPLICATION_VERSION and the UDP port, which Cisco gateways always volunteer)."""

        def want(attr: int) -> bool:
            return requested is None or attr in requested

        out: list[Attribute] = []
        if self.address is not None and want(CfgAttr.INTERNAL_IP4_ADDRESS):
            out.append(Attribute(CfgAttr.INTERNAL_IP4_ADDRESS, self.address.packed))
        if self.netmask is not None and want(CfgAttr.INTERNAL_IP4_NETMASK):
            out.append(Attribute(CfgAttr.INTERNAL_IP4_NETMASK, self.netmask.packed))
        if want(CfgAttr.INTERNAL_IP4_DNS):
            out += [Attribute(CfgAttr.INTERNAL_IP4_DNS, a.packed) for a in self.dns]
        if want(CfgAttr.INTERNAL_IP4_NBNS):
            out += [Attribute(CfgAttr.INTERNAL_IP4_NBNS, a.packed) for a in self.nbns]
        if self.address_expiry is not None and want(CfgAttr.INTERNAL_ADDRESS_EXPIRY):
            out.append(
                Attribute(CfgAttr.INTERNAL_ADDRESS_EXPIRY, self.address_expiry.to_bytes(4, "big"))
            )
        if self.banner is not None and want(CfgAttr.UNITY_BANNER):
            out.append(Attribute(CfgAttr.UNITY_BANNER, self.banner.encode()))
        if self.save_password is not None and want(CfgAttr.UNITY_SAVE_PASSWD):
            out.append(Attribute(CfgAttr.UNITY_SAVE_PASSWD, int(self.save_password)))
        if self.default_domain is not None and want(CfgAttr.UNITY_DEF_DOMAIN):
            out.append(Attribute(CfgAttr.UNITY_DEF_DOMAIN, self.default_domain.encode()))
        if self.split_dns and want(CfgAttr.UNITY_SPLIT_DNS):
            out.append(Attribute(CfgAttr.UNITY_SPLIT_DNS, ",".join(self.split_dns).encode()))
        if self.split_include and want(CfgAttr.UNITY_SPLIT_INCLUDE):
            out.append(Attribute(CfgAttr.UNITY_SPLIT_INCLUDE, _encode_acl(self.split_include)))
        if self.local_lan and want(CfgAttr.UNITY_LOCAL_LAN):
            out.append(Attribute(CfgAttr.UNITY_LOCAL_LAN, _encode_acl(self.local_lan)))
        if self.pfs is not None and want(CfgAttr.UNITY_PFS):
            out.append(Attribute(CfgAttr.UNITY_PFS, int(self.pfs)))
        if self.backup_servers and want(CfgAttr.UNITY_BACKUP_SERVERS):
            out.append(
                Attribute(CfgAttr.UNITY_BACKUP_SERVERS, ",".join(self.backup_servers).encode())
            )
        if self.ddns_hostname is not None and want(CfgAttr.UNITY_DDNS_HOSTNAME):
            out.append(Attribute(CfgAttr.UNITY_DDNS_HOSTNAME, self.ddns_hostname.encode()))
        if self.fw_type is not None and want(CfgAttr.UNITY_FW_TYPE):
            out.append(Attribute(CfgAttr.UNITY_FW_TYPE, self.fw_type))
        if self.app_version is not None:
            out.append(Attribute(CfgAttr.APPLICATION_VERSION, self.app_version.encode()))
        if self.udp_encap_port is not None:
            out.append(Attribute(CfgAttr.UNITY_NATT_PORT, self.udp_encap_port))
        return tuple(out)

    @staticmethod
    def from_attributes(attributes: tuple[Attribute, ...]) -> ModeConfig:
        """Parse a REPLY / SET.  Zero-length values (as in a REQUEST) are skipped."""
        values: dict[str, object] = {}
        dns: list[IPv4Address] = []
        nbns: list[IPv4Address] = []
        unknown: list[Attribute] = []
        for a in attributes:
            v = a.value
            if isinstance(v, bytes) and not v:
                continue
            t = a.type
            try:
                if t == CfgAttr.INTERNAL_IP4_ADDRESS:
                    values["address"] = _ip(_need_bytes(a), t)
                elif t == CfgAttr.INTERNAL_IP4_NETMASK:
                    values["netmask"] = _ip(_need_bytes(a), t)
                elif t == CfgAttr.INTERNAL_IP4_DNS:
                    dns.append(_ip(_need_bytes(a), t))
                elif t == CfgAttr.INTERNAL_IP4_NBNS:
                    nbns.append(_ip(_need_bytes(a), t))
                elif t == CfgAttr.INTERNAL_ADDRESS_EXPIRY:
                    values["address_expiry"] = a.as_int()
                elif t == CfgAttr.APPLICATION_VERSION:
                    values["app_version"] = _text(v)
                elif t == CfgAttr.UNITY_BANNER:
                    values["banner"] = _text(v)
                elif t == CfgAttr.UNITY_SAVE_PASSWD:
                    values["save_password"] = bool(a.as_int())
                elif t == CfgAttr.UNITY_DEF_DOMAIN:
                    values["default_domain"] = _text(v)
                elif t == CfgAttr.UNITY_SPLIT_DNS:
                    values["split_dns"] = tuple(s for s in _text(v).split(",") if s)
                elif t == CfgAttr.UNITY_SPLIT_INCLUDE:
                    values["split_include"] = _decode_acl(_need_bytes(a), t)
                elif t == CfgAttr.UNITY_LOCAL_LAN:
                    values["local_lan"] = _decode_acl(_need_bytes(a), t)
                elif t == CfgAttr.UNITY_PFS:
                    values["pfs"] = bool(a.as_int())
                elif t == CfgAttr.UNITY_NATT_PORT:
                    values["udp_encap_port"] = _port(a.as_int(), t)
                elif t == CfgAttr.UNITY_BACKUP_SERVERS:
                    values["backup_servers"] = tuple(s for s in _text(v).split(",") if s)
                elif t == CfgAttr.UNITY_DDNS_HOSTNAME:
                    values["ddns_hostname"] = _text(v)
                elif t == CfgAttr.UNITY_FW_TYPE:
                    values["fw_type"] = _need_bytes(a)
                else:
                    unknown.append(a)
            except ValueError as exc:  # as_int() on an odd-sized value
                raise IkeProtocolError(
                    f"mode-config attribute {t}: {exc}", notify=NotifyType.PAYLOAD_MALFORMED
                ) from None
        return ModeConfig(dns=tuple(dns), nbns=tuple(nbns), unknown=tuple(unknown), **values)  # type: ignore[arg-type]


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


def request_attributes(
    wanted: tuple[int, ...] = DEFAULT_REQUEST,
    *,
    app_version: str | None = None,
    hostname: str | None = None,
    cisco_udp: bool = False,
) -> tuple[Attribute, ...]:
    """A client's REQUEST: empty TLVs for what it wants, plus its version / host name."""
    out: list[Attribute] = []
    for attr in wanted:
        if attr == CfgAttr.APPLICATION_VERSION:
            if app_version is not None:
                out.append(Attribute(attr, app_version.encode()))
        elif attr == CfgAttr.UNITY_DDNS_HOSTNAME:
            if hostname is not None:
                out.append(Attribute(attr, hostname.encode()))
        elif attr == CfgAttr.UNITY_FW_TYPE:
            out.append(Attribute(attr, VPNC_FW_TYPE))
        else:
            out.append(Attribute(attr, b""))
    if cisco_udp:
        out.append(Attribute(CfgAttr.UNITY_NATT_PORT, b""))
    return tuple(out)


def network(value: str) -> IPv4Network:
    return ipaddress.IPv4Network(value, strict=False)
