"""How a node comes to exist, behind one small interface (Docker today)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

from ..errors import LabctlError


class LabRuntimeError(LabctlError):
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
    mgmt: IPv4Interface  # recorded on the node: its management address is not Docker's
    files: tuple[InjectedFile, ...] = ()
    # Where the runtime may keep the files as one archive the node reads at its first boot
    # (the lab's state folder, removed by `down` after the containers); None: copy them in.
    seed_dir: Path | None = None


@dataclass(frozen=True)
class NodeInfo:
    lab: str
    node: str
    kind: str
    name: str
    state: str
    pid: int
    mgmt: IPv4Interface | None  # address/prefix of its eth0 on the lab's management bridge
    image: str
    labels: dict[str, str]

    @property
    def mgmt_ipv4(self) -> IPv4Address | None:
        return self.mgmt.ip if self.mgmt is not None else None


class Runtime(ABC):
    """Nodes come to exist with no network of the runtime's: labctl wires every interface,
    the management one included (labctl.wiring)."""

    @abstractmethod
    def create_node(self, spec: NodeSpec) -> NodeInfo: ...

    @abstractmethod
    def nodes(self, lab: str | None = None) -> list[NodeInfo]: ...

    @abstractmethod
    def labs(self) -> set[str]: ...

    @abstractmethod
    def remove_lab(self, lab: str) -> list[str]: ...

    @abstractmethod
    def restart_node(self, lab: str, node: str) -> NodeInfo: ...

    @abstractmethod
    def pause_node(self, lab: str, node: str, paused: bool) -> None: ...
