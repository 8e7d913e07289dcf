"""Status records the agents publish: what the seed's VPN 3000 and VPN Client screens show.

Plain dataclasses that round-trip through JSON, so `vpn show sessions --json` on a node and
`labctl show vpn3000 sessions --json` on the host carry the very same records.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

T = TypeVar("T")


def _from_dict(cls: type[T], data: dict[str, Any]) -> T:
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class IkeSaRecord:
    session_id: int
    encryption: str  # "3DES-168", "AES-128"
    hashing: str  # "MD5", "SHA1"
    dh_group: str  # "Group 2 (1024-bit)"
    auth_mode: str  # "Pre-Shared Keys (XAUTH)"
    negotiation_mode: str  # "Aggressive" / "Main"
    rekey_interval: int  # seconds
    initiator_cookie: str
    responder_cookie: str
    established_at: float
    nat_t: str = ""  # "RFC 3947", "draft-02", "" when not negotiated
    local_behind_nat: bool = False
    remote_behind_nat: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IkeSaRecord:
        return _from_dict(cls, data)


@dataclass
class IpsecSaRecord:
    session_id: int
    remote_address: str  # the client's network, e.g. "40.1.1.1"
    local_address: str  # "172.16.172.50" or "0.0.0.0/255.255.255.255"
    encryption: str
    hashing: str
    encapsulation_mode: str  # "Tunnel"
    udp_source_port: int | None  # the peer's (translated) port for NAT-T / IPsec over UDP
    udp_destination_port: int | None
    rekey_interval: int
    spi_in: str
    spi_out: str
    bytes_rx: int = 0
    bytes_tx: int = 0
    packets_rx: int = 0
    packets_tx: int = 0
    dropped: int = 0
    idle_seconds: float = 0.0
    established_at: float = 0.0
    # IPsec over TCP: the client's (translated) TCP port and the concentrator's TCP port;
    # the udp_* ports are None then (and these are None on every other transport)
    tcp_source_port: int | None = None
    tcp_destination_port: int | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IpsecSaRecord:
        return _from_dict(cls, data)


@dataclass
class SessionRecord:
    username: str
    group: str
    assigned_ip: str
    public_ip: str
    public_port: int
    protocol: str  # "IPsec", "IPsec/NAT-T", "IPsec/UDP", "IPsec/TCP"
    encryption: str
    login_time: float
    client_type: str
    client_version: str
    bytes_tx: int = 0
    bytes_rx: int = 0
    ike: IkeSaRecord | None = None
    ipsec: list[IpsecSaRecord] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionRecord:
        record = _from_dict(cls, data)
        record.ike = IkeSaRecord.from_json(data["ike"]) if data.get("ike") else None
        record.ipsec = [IpsecSaRecord.from_json(i) for i in data.get("ipsec") or []]
        return record


@dataclass
class LanToLanRecord:
    """One row of 'LAN-to-LAN Sessions' (and its detail: the IKE and IPsec SAs)."""

    connection_name: str
    ip_address: str  # the peer's public address (its PAT's)
    public_port: int  # the peer's (translated) UDP port
    protocol: str  # "IPsec", "IPsec/NAT-T"
    encryption: str
    login_time: float
    bytes_tx: int = 0
    bytes_rx: int = 0
    local_networks: list[str] = field(default_factory=list)
    remote_networks: list[str] = field(default_factory=list)
    ike: IkeSaRecord | None = None
    ipsec: list[IpsecSaRecord] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LanToLanRecord:
        record = _from_dict(cls, data)
        record.ike = IkeSaRecord.from_json(data["ike"]) if data.get("ike") else None
        record.ipsec = [IpsecSaRecord.from_json(i) for i in data.get("ipsec") or []]
        return record


@dataclass
class SessionSummary:
    active_lan_to_lan: int
    active_remote_access: int
    active_management: int
    peak_concurrent: int
    concurrent_limit: int
    total_cumulative: int

    @property
    def total_active(self) -> int:
        return self.active_lan_to_lan + self.active_remote_access + self.active_management

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "total_active": self.total_active}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionSummary:
        return _from_dict(cls, data)


@dataclass
class ClientStatus:
    """The VPN Client's status and Statistics window."""

    state: str  # "disconnected", "connecting", "connected", "failed"
    server: str
    group: str
    user: str
    assigned_ip: str | None = None
    netmask: str | None = None
    local_ip: str | None = None
    transparent_tunneling: str = ""  # "Active on UDP port 4500", "Inactive"
    transport: str = "UDP"  # what local_port / remote_port are ports of: "UDP" or "TCP"
    local_behind_nat: bool | None = None
    remote_behind_nat: bool | None = None
    local_port: int | None = None
    remote_port: int | None = None
    encryption: str = ""
    authentication: str = ""
    spi_in: str | None = None
    spi_out: str | None = None
    packets_encrypted: int = 0
    packets_decrypted: int = 0
    packets_discarded: int = 0
    packets_bypassed: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    connected_at: float | None = None
    split_networks: list[str] = field(default_factory=list)
    banner: str | None = None
    last_error: str | None = None
    reconnects: int = 0
    # the request an unfinished exchange waits for: "waiting for Mode-Config reply
    # (3 retransmits, 12 s)"; None when nothing is outstanding
    waiting_for: str | None = None
    # IKE messages dropped per category (malformed, undecryptable, unauthenticated,
    # unexpected, refused; "stale" = late ones for SAs just removed), since the agent started
    ike_dropped: dict[str, int] = field(default_factory=dict)

    def nat_lines(self) -> list[str]:
        """The VPN Client's log line 66 wording."""
        if self.local_behind_nat is None:
            return []
        remote = "IS" if self.remote_behind_nat else "is NOT"
        local = "IS" if self.local_behind_nat else "is NOT"
        return [
            "Automatic NAT Detection Status:",
            f"   Remote end {remote} behind a NAT device",
            f"   This   end {local} behind a NAT device",
        ]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClientStatus:
        return _from_dict(cls, data)
