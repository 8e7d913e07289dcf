"""The `pat-firewall` node model: PIX-style PAT settings (`pat:`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ...topology.base import IfName, NodeBase, Strict


class PatTimeouts(Strict):
    """Conntrack timeouts (seconds) the firewall applies to translated flows."""

    udp: int | None = Field(None, ge=1, le=86400, description="UDP, unreplied and replied")
    udp_stream: int | None = Field(None, ge=1, le=86400, description="UDP seen both ways")
    tcp_established: int | None = Field(None, ge=1, le=432000)
    icmp: int | None = Field(None, ge=1, le=3600)


class PatSettings(Strict):
    """PIX-style PAT: ``nat (inside) 1 0 0`` + ``global (outside) 1 interface``."""

    inside: list[IfName] = Field(min_length=1)
    outside: IfName
    timeouts: PatTimeouts = PatTimeouts()
    allow_inbound: bool = Field(
        False, description="forward new connections from outside to inside (default: deny)"
    )
    port_allocation: Literal["preserve", "random"] = Field(
        "preserve",
        description="global ports of new translations: 'preserve' keeps the local port when "
        "it is free (Linux masquerade); 'random' always picks a fresh one (nftables "
        "fully-random), as a PIX does, so a mapping that expired and comes back gets a new port",
    )
    global_ports: str | None = Field(
        None,
        pattern=r"^[0-9]{1,5}-[0-9]{1,5}$",
        description="TCP/UDP global ports to translate to, e.g. 1024-65535 (as a PIX's PAT). "
        "None: Linux masquerade's own choice, which maps a local port below 512 (IKE's 500) "
        "into 1-511 -- at most 511 UDP-500 translations at once per global address",
    )

    drop_fragments: bool = Field(
        False,
        description="drop IP fragments crossing the firewall, either way (as NAT devices "
        "that do not pass fragments); counted in the 'fragment dropped' rule",
    )

    @field_validator("global_ports")
    @classmethod
    def _port_range(cls, value: str | None) -> str | None:
        if value is not None:
            low, high = (int(p) for p in value.split("-"))
            if not 1 <= low <= high <= 65535:
                raise ValueError(f"{value!r}: a range FIRST-LAST of ports 1-65535")
        return value


class PatFirewallNode(NodeBase):
    kind: Literal["pat-firewall"]
    pat: PatSettings
