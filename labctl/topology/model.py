"""The typed lab model: what every other part of labctl reads.

The file's sections (links, management, checks) are here; the nodes are one of the kinds
of the registry (`labctl.kinds`), each kind's model defined in its own module on the
building blocks of `base.py`. YAML keys are kebab-case (``nat-transparency``); attributes
are snake_case. Every model forbids unknown keys so a typo is an error, not a silently
ignored setting.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Network
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ..kinds.registry import kind_names, node_models
from .base import (
    IFNAME_PATTERN,
    IfName,
    InterfaceConfig,
    LabName,
    NodeBase,
    NodeName,
    Route,
    Secret,
    SecretValue,
    Strict,
    _not_reserved,
)

__all__ = [
    "KINDS",
    "Endpoint",
    "IfName",
    "InterfaceConfig",
    "LabFile",
    "Link",
    "MgmtSettings",
    "Node",
    "NodeBase",
    "Route",
    "Secret",
    "SecretValue",
    "Strict",
    "Topology",
]

KINDS = kind_names()

# A node is one of the registered kinds' models, told apart by `kind`.
Node = Annotated[Union[node_models()], Field(discriminator="kind")]  # type: ignore[valid-type]  # noqa: UP007


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
    nodes: dict[NodeName, Node] = Field(min_length=1)  # type: ignore[valid-type]
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
