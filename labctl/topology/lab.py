"""`Lab`: the validated topology plus the derived facts other packages need."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path

from .errors import UnknownNodeError
from .model import Endpoint, LabFile, Link, NodeBase


@dataclass(frozen=True)
class Segment:
    """A link as wired: its name, bridge index and resolved endpoints."""

    index: int
    name: str
    link: Link
    endpoints: tuple[Endpoint, ...]

    @property
    def is_lan(self) -> bool:
        return len(self.endpoints) > 2


@dataclass
class Lab:
    """A loaded lab. ``spec`` is the validated file; the rest is derived from it."""

    spec: LabFile
    source: Path | None
    segments: list[Segment] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.segments:
            self.segments = [
                Segment(i, link.name or f"link{i}", link, tuple(link.resolved_endpoints()))
                for i, link in enumerate(self.spec.topology.links)
            ]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def nodes(self) -> dict[str, NodeBase]:
        return self.spec.topology.nodes

    def node(self, name: str) -> NodeBase:
        try:
            return self.nodes[name]
        except KeyError:
            raise UnknownNodeError(
                f"lab {self.name} has no node {name!r} (nodes: {', '.join(self.nodes)})"
            ) from None

    def segment_of(self, node: str, interface: str) -> Segment | None:
        for segment in self.segments:
            if Endpoint(node=node, interface=interface) in segment.endpoints:
                return segment
        return None

    def interfaces_of(self, node: str) -> list[tuple[str, IPv4Interface | None, Segment]]:
        """(interface name, address, segment) for every wired interface of a node."""
        spec = self.node(node)
        result = []
        for segment in self.segments:
            for endpoint in segment.endpoints:
                if endpoint.node == node:
                    config = spec.interfaces.get(endpoint.interface)
                    result.append((endpoint.interface, config.ipv4 if config else None, segment))
        return result

    def address_of(self, node: str, interface: str) -> IPv4Interface | None:
        config = self.node(node).interfaces.get(interface)
        return config.ipv4 if config else None

    def subnets(self) -> dict[str, IPv4Network]:
        """Segment name -> its subnet (from the first addressed endpoint)."""
        result = {}
        for segment in self.segments:
            for endpoint in segment.endpoints:
                address = self.address_of(endpoint.node, endpoint.interface)
                if address is not None:
                    result[segment.name] = address.network
                    break
        return result
