"""Checks that need the whole lab: links, subnets, routes, cross-node references."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

from ..kinds.registry import client_kinds, kinds_with_show, spec_of
from ..kinds.spec import NodeContext
from .changes import SetError, apply_set
from .checks_model import TABLE_SOURCES, ShowCheck, TableCheck, node_list
from .errors import TopologyIssue
from .lab import Lab
from .loader import line_of
from .matchers import UnknownSavedValue, parse_count, parse_matcher
from .model import LabFile


class _Collector:
    def __init__(self, document: Any, file: Path | None):
        self.document = document
        self.file = file
        self.issues: list[TopologyIssue] = []

    def add(self, path: tuple[Any, ...], message: str) -> None:
        dotted = ".".join(str(p) for p in path)
        self.issues.append(TopologyIssue(self.file, line_of(self.document, path), dotted, message))


def check_lab(lab: Lab, document: Any) -> list[TopologyIssue]:
    c = _Collector(document, lab.source)
    nodes = lab.nodes
    used: dict[tuple[str, str], int] = {}
    node_addresses: dict[str, list[IPv4Interface]] = defaultdict(list)

    # Links: endpoints exist, each interface used once.
    for segment in lab.segments:
        base = ("topology", "links", segment.index)
        for position, endpoint in enumerate(segment.endpoints):
            path: tuple[str | int, ...] = (*base, "endpoints", position)
            if endpoint.node not in nodes:
                c.add(
                    path,
                    f"link endpoint {endpoint} names a node that does not exist"
                    f" (nodes: {', '.join(nodes)})",
                )
                continue
            key = (endpoint.node, endpoint.interface)
            if key in used:
                c.add(path, f"interface {endpoint} is already on link {used[key]}")
            used[key] = segment.index
        if (
            len({e.node for e in segment.endpoints}) < len(segment.endpoints)
            and len(segment.endpoints) == 2
        ):
            c.add(base, "a link cannot connect a node to itself")
    names = [s.name for s in lab.segments]
    for segment in lab.segments:
        if names.count(segment.name) > 1:
            c.add(
                ("topology", "links", segment.index, "name"),
                f"link name {segment.name!r} is used more than once",
            )

    # Interfaces: declared ones must be wired; addresses consistent per link.
    for node_name, node in nodes.items():
        for if_name, config in node.interfaces.items():
            path = ("topology", "nodes", node_name, "interfaces", if_name)
            if (node_name, if_name) not in used:
                c.add(path, f"interface {if_name} is not on any link")
            if config.ipv4 is not None:
                own = config.ipv4
                node_addresses[node_name].append(own)
                if own.network.prefixlen < 31 and own.ip in (
                    own.network.network_address,
                    own.network.broadcast_address,
                ):
                    c.add(path, f"{own} is the network or broadcast address of its subnet")

    subnets: dict[int, IPv4Network] = {}
    for segment in lab.segments:
        seen: dict[IPv4Address, str] = {}
        for endpoint in segment.endpoints:
            if endpoint.node not in nodes:
                continue
            address = lab.address_of(endpoint.node, endpoint.interface)
            if address is None:
                continue
            path = ("topology", "nodes", endpoint.node, "interfaces", endpoint.interface)
            if segment.index in subnets and address.network != subnets[segment.index]:
                c.add(
                    path,
                    f"{address} is outside the subnet {subnets[segment.index]} of link "
                    f"{segment.name!r} (set by the other endpoints)",
                )
                continue
            subnets.setdefault(segment.index, address.network)
            if address.ip in seen:
                c.add(
                    path,
                    f"duplicate address {address.ip} on link {segment.name!r} "
                    f"(also {seen[address.ip]})",
                )
            seen[address.ip] = str(endpoint)
    indexes = sorted(subnets)
    for i, a in enumerate(indexes):
        for b in indexes[i + 1 :]:
            if subnets[a].overlaps(subnets[b]):
                c.add(
                    ("topology", "links", b),
                    f"subnet {subnets[b]} of link {lab.segments[b].name!r} overlaps "
                    f"{subnets[a]} of link {lab.segments[a].name!r}",
                )

    # Routes: the gateway must be on a directly connected subnet.
    for node_name, node in nodes.items():
        seen_dst: set[IPv4Network] = set()
        for index, route in enumerate(node.routes):
            path = ("topology", "nodes", node_name, "routes", index)
            if not any(route.via in a.network for a in node_addresses[node_name]):
                c.add(path, f"gateway {route.via} is not on any subnet of {node_name}")
            if route.dst in seen_dst:
                c.add(path, f"a second route to {route.dst}")
            seen_dst.add(route.dst)

    mgmt = lab.spec.mgmt.ipv4_subnet
    if mgmt is not None:
        # labctl's own address on the management bridge takes one host address too.
        room = mgmt.num_addresses - 2 if mgmt.prefixlen < 31 else mgmt.num_addresses
        if room < len(nodes) + 1:
            c.add(
                ("mgmt", "ipv4-subnet"),
                f"{mgmt} has room for {max(room - 1, 0)} nodes besides labctl's own address; "
                f"the lab has {len(nodes)}",
            )
        for index, subnet in subnets.items():
            if subnet.overlaps(mgmt):
                c.add(
                    ("mgmt", "ipv4-subnet"),
                    f"{mgmt} overlaps lab subnet {subnet} of link {lab.segments[index].name!r}",
                )

    # Each case (the top-level expect, each scenario) starts with nothing saved and the
    # lab as the file describes it; its steps run in order.
    _check_expectations(c, lab, lab.spec.expect, ("expect",), set())
    for name, scenario in lab.spec.scenarios.items():
        case = _Case(saved=set(), spec=lab.spec)
        for index, entry in enumerate(scenario.not_applicable):
            _check_when(c, lab, entry.when, ("scenarios", name, "not-applicable", index))
        for index, step in enumerate(scenario.steps):
            _check_step(c, lab, step, ("scenarios", name, "steps", index), case)

    # What each kind checks beyond the model: its own settings against its interfaces,
    # references to other nodes, what its implementation cannot express.
    for node_name, node in nodes.items():
        spec = spec_of(node.kind)
        context = NodeContext(lab, node_name, node, subnets, c.add)
        for check in (spec.check, spec.implementation(node).check):
            if check is not None:
                check(context)
    return c.issues


def _kinds_for(check: str) -> tuple[str, ...]:
    """The node kinds an expectation may name: those that have the table it reads."""
    return kinds_with_show(TABLE_SOURCES[check])


def _need_node(
    c: _Collector, lab: Lab, path: tuple, name: str, kinds: tuple[str, ...] | None = None
) -> None:
    node = lab.nodes.get(name)
    if node is None:
        c.add(path, f"no node {name!r} in this lab (nodes: {', '.join(lab.nodes)})")
    elif kinds and node.kind not in kinds:
        c.add(path, f"{name} is a {node.kind}; this needs a {' or '.join(kinds)}")


def _check_when(c: _Collector, lab: Lab, when: dict[str, Any] | None, path: tuple) -> None:
    """`when: {node: implementation(s)}` names nodes of the lab and implementations their
    kind has (a typo would make the step silently never apply)."""
    for name, wanted in (when or {}).items():
        _need_node(c, lab, (*path, "when", name), name)
        node = lab.nodes.get(name)
        if node is None:
            continue
        known = [i.name for i in spec_of(node.kind).implementations]
        for implementation in [wanted] if isinstance(wanted, str) else wanted:
            if implementation not in known:
                c.add(
                    (*path, "when", name),
                    f"{name} ({node.kind}) has no implementation {implementation!r} "
                    f"(implementations: {', '.join(known)})",
                )


def _check_expectations(
    c: _Collector, lab: Lab, expectations, base: tuple, saved: set[str]
) -> None:
    for index, expectation in enumerate(expectations):
        _check_when(c, lab, expectation.when, (*base, index))
        path = (*base, index, expectation.kind.replace("_", "-"))
        check = expectation.check
        if expectation.kind in TABLE_SOURCES or expectation.kind == "show":
            kinds = _kinds_for(expectation.kind) if expectation.kind != "show" else None
            _need_node(c, lab, (*path, "node"), check.node, kinds)
            _check_table(c, lab, check, path, saved)
        elif expectation.kind == "ping":
            _need_node(c, lab, (*path, "from"), check.source)
        elif expectation.kind == "session_follows_xlate":
            _need_node(c, lab, (*path, "firewall"), check.firewall, _kinds_for("xlate"))
            _need_node(c, lab, (*path, "concentrator"), check.concentrator, _kinds_for("sessions"))


def _check_table(c: _Collector, lab: Lab, check: TableCheck, path: tuple, saved: set[str]) -> None:
    """Every matcher parses, names only values saved earlier in the case, and a `show`
    reads a table the node's kind has; what the check saves is known from here on."""
    if check.count is not None:
        try:
            parse_count(check.count)
        except ValueError as exc:
            c.add((*path, "count"), str(exc))
    used = {*check.all, *check.any, *check.same, *check.distinct, *check.save.values()}
    for field in check.if_reported:
        if field not in used:  # a typo would silently check nothing less
            c.add(
                (*path, "if-reported"),
                f"{field!r} is not a field this check reads (all, any, same, distinct, save)",
            )
    known = dict.fromkeys(saved)  # the names are known here, the values only at test time
    for group in ("where", "all", "any"):
        for key, spec in getattr(check, group).items():
            try:
                parse_matcher(spec, known)
            except UnknownSavedValue:
                names = ", ".join(f"${n}" for n in sorted(saved)) or "none"
                c.add(
                    (*path, group, key),
                    f"{spec!r} names a value no earlier expectation of this case saves "
                    f"(saved before this point: {names})",
                )
            except ValueError as exc:
                c.add((*path, group, key), str(exc))
    if isinstance(check, ShowCheck) and check.node in lab.nodes:
        from ..state.shows import shows_for  # the common tables and the node's kind's

        node = lab.nodes[check.node]
        kind = node.kind
        available = sorted(shows_for(node))
        if check.what not in available:
            c.add(
                (*path, "what"),
                f"{check.node} ({kind}) has no table {check.what!r} (available: "
                f"{', '.join(available)})",
            )
    saved.update(check.save)


@dataclass
class _Case:
    """What a scenario's steps have done so far: values saved, settings changed."""

    saved: set[str]
    spec: LabFile


def _check_step(c: _Collector, lab: Lab, step, path: tuple, case: _Case) -> None:
    _check_when(c, lab, step.when, path)
    kind = step.kind
    value = getattr(step, kind)
    key = kind.replace("_", "-")
    if kind == "expect":
        _check_expectations(c, lab, value, (*path, "expect"), case.saved)
    elif kind in ("connect", "disconnect"):
        for name in node_list(value):
            _need_node(c, lab, (*path, key), name, client_kinds())
    elif kind in ("push", "flush_conntrack", "restart"):
        for name in node_list(value):
            _need_node(c, lab, (*path, key), name)
    elif kind == "set":
        _need_node(c, lab, (*path, key, "node"), value.node)
        if value.node in lab.nodes:
            base_dir = lab.source.parent if lab.source else None
            try:
                case.spec = apply_set(case.spec, value.node, value.path, value.value, base_dir).spec
            except SetError as exc:
                c.add((*path, key, exc.field), str(exc))
    elif kind == "pause":
        _need_node(c, lab, (*path, key, "node"), value.node)
    elif kind == "traffic":
        for name in node_list(value.source):
            _need_node(c, lab, (*path, key, "from"), name)
    elif kind == "exec":
        for name in value:
            _need_node(c, lab, (*path, key), name)
    elif kind == "impair" and value.link not in {s.name for s in lab.segments}:
        c.add(
            (*path, key, "link"),
            f"no link named {value.link!r} (links: {', '.join(s.name for s in lab.segments)})",
        )
