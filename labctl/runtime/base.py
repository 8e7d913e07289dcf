"""How a node comes to exist, behind one small interface (Docker today)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network


class LabRuntimeError(Exception):
    """A runtime operation failed; the message names the node/lab and what to check."""


@dataclass(frozen=True)
class InjectedFile:
    path: str
    content: bytes = field(repr=False)
    mode: int = 0o644


@dataclass(frozen=True)
class NodeSpec:
    """Everything the runtime needs to create one node."""

    lab: str
    node: str
    kind: str
    image: str
    labels: dict[str, str]
    env: dict[str, str]
    sysctls: dict[str, str]
    needs_tun: bool
    files: tuple[InjectedFile, ...] = ()


@dataclass(frozen=True)
class NodeInfo:
    lab: str
    node: str
    kind: str
    name: str
    state: str
    pid: int
    mgmt_ipv4: IPv4Address | None
    image: str
    labels: dict[str, str]


@dataclass(frozen=True)
class MgmtNetwork:
    name: str
    subnet: IPv4Network
    gateway: IPv4Address | None


class Runtime(ABC):
    @abstractmethod
    def ensure_mgmt_network(
        self, lab: str, wanted: IPv4Network | None, avoid: list[IPv4Network]
    ) -> MgmtNetwork: ...

    @abstractmethod
    def create_node(self, spec: NodeSpec, mgmt: MgmtNetwork) -> NodeInfo: ...

    @abstractmethod
    def nodes(self, lab: str | None = None) -> list[NodeInfo]: ...

    @abstractmethod
    def mgmt_network(self, lab: str) -> MgmtNetwork | None: ...

    @abstractmethod
    def labs(self) -> set[str]: ...

    @abstractmethod
    def remove_lab(self, lab: str) -> list[str]: ...

    @abstractmethod
    def restart_node(self, lab: str, node: str) -> NodeInfo: ...

    @abstractmethod
    def pause_node(self, lab: str, node: str, paused: bool) -> None: ...
