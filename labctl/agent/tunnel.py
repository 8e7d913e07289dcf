"""Tunnels, their counters and the events the data plane reports to the agent."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Protocol

from labctl.esp.sa import EspSa
from labctl.ike.encapsulation import Encapsulation

Endpoint = tuple[str, int]

# The engine's encapsulation type is the data plane's: a tunnel's ``encap`` is the member
# whose socket carries it (Encap.ESP, NATT, CISCO, TCP; see Encapsulation.transport).
Encap = Encapsulation


class PacketStream(Protocol):
    """What a TCP-mode tunnel sends through: one connection of ``tcp_transport``."""

    peer: Endpoint
    closed: bool

    def send_esp(self, esp: bytes | bytearray) -> str | None:
        """Frame and send (or queue) one ESP packet; a drop reason when it could not."""
        ...


# ---------------------------------------------------------------------- events
@dataclass(frozen=True)
class PeerEndpointChanged:
    tunnel: str
    old: Endpoint | None
    new: Endpoint


@dataclass(frozen=True)
class OutboundSaExhausted:
    """The outbound SA ran out of sequence numbers: rekey now, traffic is being dropped."""

    tunnel: str
    spi: int


@dataclass(frozen=True)
class InboundSaRetired:
    tunnel: str
    spi: int


@dataclass(frozen=True)
class UnknownSpi:
    """ESP arrived for an SPI we do not hold (stale peer after our restart, or garbage)."""

    spi: int
    source: Endpoint


@dataclass(frozen=True)
class VolumeReached:
    """An SA pair's busier direction has carried at least the bytes ``watch_volume`` asked
    about (kilobyte lifetimes): seen at the end of the batch that crossed it."""

    tunnel: str
    spi: int  # the pair's inbound SPI
    carried: int


DataplaneEvent = (
    PeerEndpointChanged | OutboundSaExhausted | InboundSaRetired | UnknownSpi | VolumeReached
)


# ---------------------------------------------------------------------- tunnels
class TunnelCounters:
    __slots__ = (
        "drops",
        "dummies_rx",
        "keepalives_rx",
        "keepalives_tx",
        "rx_bytes",
        "rx_packets",
        "tx_bytes",
        "tx_packets",
    )

    def __init__(self) -> None:
        self.tx_packets = self.tx_bytes = self.rx_packets = self.rx_bytes = 0
        self.keepalives_tx = self.keepalives_rx = self.dummies_rx = 0
        self.drops: dict[str, int] = {}

    def drop(self, reason: str, count: int = 1) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + count

    def as_dict(self) -> dict[str, Any]:
        return {
            "tx_packets": self.tx_packets,
            "tx_bytes": self.tx_bytes,
            "rx_packets": self.rx_packets,
            "rx_bytes": self.rx_bytes,
            "keepalives_tx": self.keepalives_tx,
            "keepalives_rx": self.keepalives_rx,
            "dummies_rx": self.dummies_rx,
            "drops": dict(self.drops),
        }


class Tunnel:
    """One IPsec tunnel to one peer: routes, SAs, endpoint, counters."""

    def __init__(
        self,
        name: str,
        encap: Encap,
        remote_networks: list[ipaddress.IPv4Network],
        peer: Endpoint | None,
        send_keepalives: bool,
        keepalive_interval: float,
        created_at: float,
    ) -> None:
        self.name = name
        self.encap = encap
        self.remote_networks = remote_networks
        # (network, mask) ints for the per-packet inbound policy check
        self._remote = tuple((int(n.network_address), int(n.netmask)) for n in remote_networks)
        # Our side's networks (the child SA's local selector); empty: any source. Two tunnels
        # may share one remote network when their local networks differ (a LAN-to-LAN
        # entry with two local networks): the route's owner then lists them in
        # ``by_source`` and a packet goes by its source address.
        self.local_networks: list[ipaddress.IPv4Network] = []
        self._local: tuple[tuple[int, int], ...] = ()
        self.by_source: list[Tunnel] = []
        self.peer = peer
        self.stream: PacketStream | None = None  # set for Encap.TCP: the tunnel's connection
        self.send_keepalives = send_keepalives
        self.keepalive_interval = keepalive_interval
        self.outbound: EspSa | None = None
        self.inbound: dict[int, EspSa] = {}
        self.counters = TunnelCounters()
        self.endpoint_changes = 0
        self.created_at = created_at
        self.last_tx = created_at
        self.last_rx: float | None = None

    def set_local_networks(self, networks: list[ipaddress.IPv4Network]) -> None:
        self.local_networks = networks
        self._local = tuple((int(n.network_address), int(n.netmask)) for n in networks)

    def local_overlaps(self, other: Tunnel) -> bool:
        return (
            not self.local_networks
            or not other.local_networks
            or any(a.overlaps(b) for a in self.local_networks for b in other.local_networks)
        )

    def pick(self, src: int) -> Tunnel | None:
        """The tunnel of ``by_source`` whose local networks hold ``src``."""
        for tunnel in self.by_source:
            for net, mask in tunnel._local:
                if src & mask == net:
                    return tunnel
        return None

    def remote_allows(self, src: int) -> bool:
        # explicit loop: any() with a generator costs ~3x more on this per-packet path
        for net, mask in self._remote:  # noqa: SIM110
            if src & mask == net:
                return True
        return False

    def stats(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "encap": self.encap.socket_name,
            "peer": None if self.peer is None else {"ip": self.peer[0], "port": self.peer[1]},
            "remote_networks": [str(n) for n in self.remote_networks],
            "local_networks": [str(n) for n in self.local_networks],
            "endpoint_changes": self.endpoint_changes,
            "send_keepalives": self.send_keepalives,
            "created_at": self.created_at,
            "last_tx": self.last_tx,
            "last_rx": self.last_rx,
            **self.counters.as_dict(),
            "outbound_sa": None if self.outbound is None else self.outbound.stats(),
            "inbound_sas": [sa.stats() for sa in self.inbound.values()],
        }
