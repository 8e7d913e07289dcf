"""What `labctl show NODE WHAT` can show, read from the node's real state.

Every node has the common tables below; its kind's implementation adds its own
(`labctl.kinds`: xlate on a PAT firewall, sessions on a concentrator, ...).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ..errors import LabctlError
from ..kinds.collect import json_and_text, run
from ..kinds.registry import implementation_of
from ..kinds.spec import ShowTable
from ..topology import NodeBase
from .arp import ARP_COMMAND, parse_neigh_json, render_arp
from .xlate import XLATE_COMMAND, parse_conntrack_xml


class ShowError(LabctlError):
    """A show cannot be collected or is unknown for the node."""


def collect_arp(handle: Any, node: str, verbose: bool = False) -> tuple[Any, str]:
    entries = parse_neigh_json(run(handle, node, ARP_COMMAND))
    return [e.to_json() for e in entries], render_arp(entries)


def collect_conntrack(handle: Any, node: str, verbose: bool = False) -> tuple[Any, str]:
    flows = parse_conntrack_xml(run(handle, node, XLATE_COMMAND))
    return [asdict(f) for f in flows], run(handle, node, "conntrack -L 2>/dev/null")


COMMON_SHOWS: tuple[ShowTable, ...] = (
    ShowTable("arp", "neighbour table of the lab interfaces (PIX 'show arp')", collect_arp),
    ShowTable("conntrack", "every conntrack flow in the node", collect_conntrack),
    ShowTable("route", "routing table", json_and_text("ip -j route", "ip route")),
    ShowTable("interfaces", "interfaces and addresses", json_and_text("ip -j addr", "ip -br addr")),
)


def shows_for(node: NodeBase) -> dict[str, ShowTable]:
    """The tables a node has: the common ones and its implementation's, by name."""
    tables = {show.name: show for show in COMMON_SHOWS}
    tables.update((show.name, show) for show in implementation_of(node).shows)
    return tables


def collect(handle: Any, node: str, what: str, verbose: bool = False) -> tuple[Any, str]:
    spec = handle.lab.node(node)
    tables = shows_for(spec)
    if what not in tables:
        raise ShowError(
            f"cannot show {what!r} on {node} ({spec.kind}); available: {', '.join(sorted(tables))}"
        )
    return tables[what].collect(handle, node, verbose)
