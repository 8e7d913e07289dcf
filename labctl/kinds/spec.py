"""What a node kind is: one `KindSpec` per kind, the contract every part of labctl reads.

A spec says, for its kind: the topology model of its nodes, how a node is created (image
role, IP forwarding, a TUN device), when it is configured (push stage), what a push
installs (rendering), what `labctl validate` checks beyond the model, which `labctl show`
tables it has, and how `labctl graph` draws it.

What depends on the software a node runs -- its image, rendered files, show collectors,
the settings it cannot express, how a scenario connects it -- is an `Implementation`. A
kind has one or more; the first is the default, and a kind with several has an
`implementation` field in its model naming one (issue 10: ours | strongswan | vpnc).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from ipaddress import IPv4Network
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..topology.base import NodeBase

if TYPE_CHECKING:
    from ..topology.lab import Lab

N = TypeVar("N", bound=NodeBase)


class PushStage(IntEnum):
    """When `up` configures a node: every node of a stage before any node of the next."""

    # Routers, firewalls, servers, gateways.
    NETWORK = 0
    # Nodes that start talking as soon as they are configured (a VPN client connects at
    # once): before the PAT's rules are loaded its first packets would cross untranslated,
    # and conntrack would keep that flow untranslated.
    CLIENTS = 1


@dataclass(frozen=True)
class GraphShape:
    """How `labctl graph` draws a node of the kind."""

    dot: str  # a Graphviz node shape
    mermaid: tuple[str, str]  # Mermaid's opening and closing brackets


# --- rendering ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedFile:
    path: str
    content: bytes = field(repr=False)
    mode: int = 0o644
    # Command that validates a staged copy before it replaces the file ({path}: the copy).
    check: str | None = None


@dataclass(frozen=True)
class NodeConfig:
    """What a push installs on a node, and how the node's service picks it up."""

    node: str
    files: tuple[RenderedFile, ...] = ()
    reload_commands: tuple[str, ...] = ()
    host_sysctls: dict[str, str] = field(default_factory=dict)


# (lab, node name) -> what the implementation installs (labctl adds /etc/labctl/node.json).
Renderer = Callable[["Lab", str], NodeConfig]


# --- show tables -------------------------------------------------------------------------

# (lab handle, node, verbose) -> (records for --json, text for people)
Collector = Callable[[Any, str, bool], tuple[Any, str]]


@dataclass(frozen=True)
class ShowTable:
    """One `labctl show NODE NAME` table, read from the node's real state."""

    name: str
    help: str
    collect: Collector


# --- checks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeContext(Generic[N]):
    """What a kind's checks see: the lab, one node of the kind, and where to report."""

    lab: Lab
    name: str
    node: N
    subnets: Mapping[int, IPv4Network]  # link index -> the subnet its endpoints share
    report: Callable[[tuple[Any, ...], str], None] = field(repr=False)

    def error(self, path: tuple[Any, ...], message: str) -> None:
        """An issue at `path` below the node (("pat", "outside")), with the file's line."""
        self.report(("topology", "nodes", self.name, *path), message)


Checker = Callable[[NodeContext[Any]], None]


# --- the spec ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientCommands:
    """How a scenario's `connect` / `disconnect` steps drive a client node."""

    connect: str  # waits until connected; non-zero exit and a reason when it cannot
    connect_timeout: float  # seconds the connect command may take
    disconnect: str
    disconnect_timeout: float


@dataclass(frozen=True)
class Implementation:
    """The software a node of the kind runs, and everything that depends on it."""

    name: str
    image_role: str  # an image role of labctl.images ("node", "vpn", ...)
    render: Renderer | None  # None: nothing to install beyond /etc/labctl/node.json
    shows: tuple[ShowTable, ...] = ()
    # Settings of the kind this implementation cannot express: a validate error each.
    check: Checker | None = None
    client: ClientCommands | None = None


@dataclass(frozen=True)
class KindSpec:
    name: str  # the topology's `kind:`
    summary: str  # one line, for docs and listings
    model: type[NodeBase]  # the node's model; its `kind` is Literal[name]
    implementations: tuple[Implementation, ...]  # the first is the default
    graph: GraphShape
    forwarding: bool  # the node routes between its interfaces (net.ipv4.ip_forward=1)
    needs_tun: bool  # the container gets /dev/net/tun (and CAP_NET_ADMIN)
    push_stage: PushStage
    # The node's own fields that a push applies (rendered), not structure: changing them
    # re-pushes the node instead of asking for a rebuild.
    settings: tuple[str, ...] = ()
    check: Checker | None = None  # validate checks needing the lab (references, addresses)
    # Address space the node uses beyond its interfaces and routes (VPN pools):
    # the management subnet must avoid it.
    networks: Callable[[Any], Iterable[IPv4Network]] | None = None

    def implementation(self, node: NodeBase | None = None) -> Implementation:
        """The implementation a node runs: its `implementation` field, else the default."""
        wanted = getattr(node, "implementation", None)
        if wanted is None:
            return self.implementations[0]
        for implementation in self.implementations:
            if implementation.name == wanted:
                return implementation
        known = ", ".join(i.name for i in self.implementations)
        raise ValueError(f"kind {self.name} has no implementation {wanted!r} (known: {known})")
