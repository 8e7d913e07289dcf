"""What the engine hands back: datagrams to send, events, and when to call ``tick`` next.

Every key in an event is ``bytes`` in a field excluded from repr(), so logging an event never
leaks key material.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Network

from .encapsulation import Encapsulation
from .errors import DropCategory
from .modecfg import ModeConfig
from .states import Role, XauthState
from .vendor import PeerVendorInfo

Endpoint = tuple[str, int]


@dataclass(frozen=True)
class SaHandle:
    """Identifies a phase-1 SA: the two cookies (never the peer address)."""

    icookie: bytes
    rcookie: bytes

    def __repr__(self) -> str:
        return f"SaHandle({self.icookie.hex()}:{self.rcookie.hex()})"

    def __str__(self) -> str:
        return f"{self.icookie.hex()}:{self.rcookie.hex()}"


@dataclass(frozen=True)
class Datagram:
    """One UDP payload to send.

    ``data`` is the ISAKMP message WITHOUT the 4-byte non-ESP marker.  When
    ``non_esp_marker`` is true (the SA floated to the NAT-T port) the socket layer must put
    ``00 00 00 00`` in front; it must likewise strip the marker from IKE datagrams arriving on
    that port (and route anything whose first four bytes are not zero to ESP) before calling
    ``receive``.  Send from local UDP port ``local_port`` (and ``local_ip`` when the host has
    several) to ``remote``.
    """

    data: bytes = field(repr=False)
    remote: Endpoint
    local_port: int
    non_esp_marker: bool = False
    local_ip: str | None = None
    # IPsec over TCP: send ``data`` on the TCP connection to ``remote`` (the caller's
    # stream framing adds its own marker; ``non_esp_marker`` is then always False).
    tcp: bool = False

    def wire_bytes(self) -> bytes:
        return (b"\x00\x00\x00\x00" + self.data) if self.non_esp_marker else self.data


class Event:
    """Base class of everything in ``Output.events``."""


@dataclass(frozen=True)
class Phase1Algorithms:
    encryption: str  # "3des-cbc", "aes128-cbc", ...
    hash: str  # "md5", "sha1", "sha2-256"
    dh_group: int
    auth_method: str  # "psk", "xauth_init_psk"
    lifetime: int  # seconds, after any RESPONDER-LIFETIME
    encryption_id: int = 0
    key_bits: int | None = None
    hash_id: int = 0


@dataclass(frozen=True)
class NatStatus:
    """Outcome of NAT discovery, from this engine's point of view."""

    natt_version: str | None  # "rfc3947", "draft-02n", ... None when NAT-T is not in use
    local_behind_nat: bool
    remote_behind_nat: bool
    floated: bool  # IKE moved to the NAT-T port
    # ESP encapsulation the quick modes will use: "none" (plain ESP), "udp" (RFC 3948 on the
    # NAT-T port), "cisco-udp" (IPsec over UDP on a configured port), "tcp" (IPsec over TCP:
    # IKE and ESP on one TCP connection)
    encapsulation: str = "none"

    def describe(self) -> str:
        this = "IS" if self.local_behind_nat else "is NOT"
        remote = "IS" if self.remote_behind_nat else "is NOT"
        return f"Remote end {remote} behind a NAT device, this end {this} behind a NAT device"


@dataclass(frozen=True)
class Phase1Established(Event):
    handle: SaHandle
    role: Role
    mode: str  # "aggressive" | "main"
    peer: Endpoint
    local: Endpoint
    algorithms: Phase1Algorithms
    nat: NatStatus
    group: str | None
    peer_id: str
    xauth_pending: bool
    peer_vendor: PeerVendorInfo
    replaces: SaHandle | None = None
    initial_contact: bool = False
    lan_to_lan: str | None = None  # responder: the LAN-to-LAN entry (then no XAUTH, no pool)
    # Lab-only export material (see keyexport.py); never logged.
    enc_key: bytes = field(default=b"", repr=False)


@dataclass(frozen=True)
class XauthResult(Event):
    handle: SaHandle
    user: str
    success: bool
    attempts: int
    reason: str = ""


@dataclass(frozen=True)
class ModeConfigApplied(Event):
    """Responder: the settings it gave the client (and the client's own version string)."""

    handle: SaHandle
    user: str | None
    config: ModeConfig
    peer_app_version: str | None
    style: str  # "pull" | "push" | "inherited"


@dataclass(frozen=True)
class ModeConfigReceived(Event):
    """Initiator: the settings the gateway gave us."""

    handle: SaHandle
    config: ModeConfig
    style: str  # "pull" | "push"


@dataclass(frozen=True)
class ChildSaEstablished(Event):
    """A pair of ESP SAs.  Keys are per direction: "in" protects what we receive."""

    handle: SaHandle
    message_id: int
    inbound_spi: int
    outbound_spi: int
    encryption: str  # "3des-cbc", "aes128-cbc", ...
    integrity: str  # "hmac-md5-96", "hmac-sha1-96", "hmac-sha2-256-128"
    encapsulation: Encapsulation
    # Peer's port for encapsulated ESP: UDP for NAT-T / cisco-udp, the peer's (translated)
    # TCP port for "tcp"; None for plain ESP.
    udp_port: int | None
    local_port: int | None  # our port for encapsulated ESP (UDP, or TCP for "tcp")
    local_ts: IPv4Network
    remote_ts: IPv4Network
    lifetime_seconds: int
    lifetime_kilobytes: int | None
    peer: Endpoint
    local: Endpoint
    pfs_group: int | None
    rekey_of: int | None = None  # inbound SPI of the child this one replaces
    user: str | None = None
    started_by_peer: bool = False  # the peer started its quick mode (e.g. a gateway's rekey)
    enc_key_in: bytes = field(default=b"", repr=False)
    auth_key_in: bytes = field(default=b"", repr=False)
    enc_key_out: bytes = field(default=b"", repr=False)
    auth_key_out: bytes = field(default=b"", repr=False)


@dataclass(frozen=True)
class ChildSaDeleted(Event):
    handle: SaHandle
    inbound_spi: int
    outbound_spi: int
    reason: str  # "peer-delete" | "expired" | "local" | "rekeyed" | "phase1-gone"


@dataclass(frozen=True)
class Phase1Deleted(Event):
    handle: SaHandle
    reason: str  # "peer-delete" | "expired" | "local" | "dpd" | "initial-contact" | ...
    user: str | None = None
    replaced_by: SaHandle | None = None


@dataclass(frozen=True)
class Phase1Rekeyed(Event):
    """A new phase-1 SA took over a running session (children, address, DPD move to it).

    Responder: emitted once the new SA is authenticated (after XAUTH) and recognised as the
    same client (group + user + peer IP); the old SA follows with Phase1Deleted once the
    client deletes it or it expires.  Initiator: emitted when its own rekey completes."""

    handle: SaHandle
    replaces: SaHandle
    user: str | None = None


@dataclass(frozen=True)
class ChildInfo:
    inbound_spi: int
    outbound_spi: int
    encryption: str
    integrity: str
    encapsulation: Encapsulation
    local_ts: IPv4Network
    remote_ts: IPv4Network
    established: float
    expires_at: float


@dataclass(frozen=True)
class SessionInfo:
    """Snapshot of one established phase-1 SA, for status displays (no keys)."""

    handle: SaHandle
    role: str
    mode: str
    group: str | None
    user: str | None
    peer: Endpoint
    local: Endpoint
    algorithms: Phase1Algorithms
    nat: NatStatus
    xauth: XauthState
    address: str | None
    peer_app_version: str | None
    established_at: float | None
    expires_at: float | None
    children: tuple[ChildInfo, ...]
    replaced_by: SaHandle | None = None


@dataclass(frozen=True)
class PeerDead(Event):
    handle: SaHandle
    peer: Endpoint
    unanswered: int


@dataclass(frozen=True)
class PeerEndpointChanged(Event):
    handle: SaHandle
    old: Endpoint
    new: Endpoint
    local_port: int


@dataclass(frozen=True)
class NotifyReceived(Event):
    """A notify the engine did not consume itself (errors, vendor-specific...)."""

    handle: SaHandle | None
    notify_type: int
    protocol: int
    spi: bytes
    data: bytes
    encrypted: bool


@dataclass(frozen=True)
class ExchangeFailed(Event):
    """An exchange gave up: bad proposal, wrong PSK, timeout, authentication failure..."""

    handle: SaHandle | None
    peer: Endpoint
    stage: str  # "phase1", "xauth", "modecfg", "quick", "informational"
    reason: str
    notify: int | None = None


@dataclass(frozen=True)
class PacketDropped(Event):
    """A message that was not acted on: malformed, undecryptable, unauthenticated,
    unexpected or refused (``category``, see :mod:`labctl.ike.errors`).

    ``exchange`` and ``payload`` say where, when known ("aggressive", "ATTR"); ``stale``
    marks a message for an SA this engine removed a moment ago (a late retransmission or
    a Delete crossing ours): harmless, reported at debug level.  ``reason`` is text for
    people; parts of it may come from the wire, so log it through the event log's escaping.
    """

    peer: Endpoint
    reason: str
    offset: int | None = None
    handle: SaHandle | None = None
    category: DropCategory = DropCategory.UNEXPECTED
    exchange: str | None = None
    payload: str | None = None
    stale: bool = False


@dataclass(frozen=True)
class RequestRetransmitted(Event):
    """A request of ours is still unanswered and was sent again: the exchange is stuck
    ``waited`` seconds at ``waiting_for`` ("Mode-Config reply", "quick mode reply", ...)."""

    handle: SaHandle
    peer: Endpoint
    stage: str  # "phase1", "xauth", "modecfg", "quick"
    waiting_for: str
    retransmits: int
    waited: float


@dataclass(frozen=True)
class Waiting:
    """An unanswered request (initiator status: "waiting for Mode-Config reply")."""

    stage: str
    waiting_for: str
    retransmits: int
    since: float  # engine time the request was first sent

    def describe(self, now: float) -> str:
        tries = "retransmit" if self.retransmits == 1 else "retransmits"
        return (
            f"waiting for {self.waiting_for} ({self.retransmits} {tries}, "
            f"{max(0.0, now - self.since):.0f} s)"
        )


@dataclass
class Collector:
    """Accumulates one engine call's datagrams and events (frozen into an Output)."""

    datagrams: list[Datagram] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def event(self, e: Event) -> None:
        self.events.append(e)


@dataclass(frozen=True)
class Output:
    datagrams: tuple[Datagram, ...] = ()
    events: tuple[Event, ...] = ()
    next_deadline: float | None = None  # call tick() at (or soon after) this time

    def of_type(self, cls: type) -> list:
        return [e for e in self.events if isinstance(e, cls)]


@dataclass(frozen=True)
class IkeFragments(Event):
    """Cisco IKE fragmentation at work: a phase-1 message ``size`` bytes long went out as
    (``sent``) or was reassembled from (not ``sent``) ``fragments`` fragment datagrams."""

    handle: SaHandle | None
    peer: Endpoint
    exchange: str
    size: int
    fragments: int
    sent: bool
