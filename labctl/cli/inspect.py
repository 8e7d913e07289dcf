"""`labctl inspect`: every lab with its nodes, addresses and links, from what `up` recorded
and what the runtime reports (the web console draws its lab pages from the same dicts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..lifecycle import LabState, RecordError, lab_from_model, lab_health
from ..naming import bridge_name, container_name, fabric_netns, fabric_port_name
from ..runtime import NodeInfo, Runtime
from ..topology import Lab
from ..wiring import list_named_netns


def recorded_lab(name: str) -> Lab | None:
    """The lab model `up` recorded (secrets masked), or None (no record, or unreadable)."""
    record = LabState.of(name).read_record()
    if not record or "model" not in record:
        return None
    try:
        topology = record.get("topology")
        return lab_from_model(record["model"], Path(topology) if topology else None)
    except RecordError:
        return None


def describe_lab(
    name: str, lab: Lab | None, nodes: list[NodeInfo], state: str, record: dict | None = None
) -> dict[str, Any]:
    """One lab as JSON: nodes (kind, state, management and lab addresses, routes) and links
    (bridge, subnet, endpoints with their fabric ports)."""
    infos = {info.node: info for info in nodes}
    record = record or {}
    result: dict[str, Any] = {
        "lab": name,
        "state": state,
        "topology": record.get("topology"),
        "netns": fabric_netns(name),
        "mgmt_subnet": record.get("mgmt_subnet"),
        "nodes": [],
        "links": [],
    }
    names = list(lab.nodes) if lab else sorted(infos)
    for node in names:
        info = infos.get(node)
        spec = lab.nodes.get(node) if lab else None
        interfaces = []
        if lab and spec is not None:
            for interface, address, segment in lab.interfaces_of(node):
                interfaces.append(
                    {
                        "name": interface,
                        "ipv4": str(address) if address else None,
                        "link": segment.name,
                    }
                )
        result["nodes"].append(
            {
                "name": node,
                "kind": spec.kind if spec is not None else (info.kind if info else None),
                "state": info.state if info else "missing",
                "container": info.name if info else container_name(name, node),
                "image": info.image if info else None,
                "mgmt_ipv4": str(info.mgmt_ipv4) if info and info.mgmt_ipv4 else None,
                "interfaces": interfaces,
                "routes": [
                    {"dst": str(route.dst), "via": str(route.via)}
                    for route in (spec.routes if spec is not None else [])
                ],
            }
        )
    if lab is None:  # no record: what the runtime says is all there is
        return result
    subnets = lab.subnets()
    for segment in lab.segments:
        result["links"].append(
            {
                "name": segment.name,
                "bridge": bridge_name(segment.index),
                "subnet": str(subnets[segment.name]) if segment.name in subnets else None,
                "lan": segment.is_lan,
                "endpoints": [
                    {
                        "node": endpoint.node,
                        "interface": endpoint.interface,
                        "ipv4": _address(lab, endpoint.node, endpoint.interface),
                        "fabric_port": fabric_port_name(segment.index, position),
                    }
                    for position, endpoint in enumerate(segment.endpoints)
                ],
            }
        )
    return result


def _address(lab: Lab, node: str, interface: str) -> str | None:
    address = lab.address_of(node, interface)
    return str(address) if address else None


def inspect_labs(runtime: Runtime, names: list[str], only: str | None = None) -> list[dict]:
    netns = list_named_netns()
    labs = []
    for name in names:
        if only not in (None, name):
            continue
        nodes = runtime.nodes(name)
        state = lab_health(name, nodes, netns).text()
        labs.append(
            describe_lab(name, recorded_lab(name), nodes, state, LabState.of(name).read_record())
        )
    return labs


def render_inspection(labs: list[dict]) -> str:
    if not labs:
        return "no labs are up\n"
    lines: list[str] = []
    for lab in labs:
        lines.append(f"lab {lab['lab']}: {lab['state']}  (netns {lab['netns']})")
        for node in lab["nodes"]:
            lines.append(
                f"  node {node['name']} ({node['kind']}, {node['state']}) "
                f"mgmt {node['mgmt_ipv4'] or '-'}"
            )
            for interface in node["interfaces"]:
                lines.append(
                    f"    {interface['name']:<10} {interface['ipv4'] or '-':<20} "
                    f"link {interface['link']}"
                )
            for route in node["routes"]:
                lines.append(f"    route {route['dst']} via {route['via']}")
        for link in lab["links"]:
            ends = ", ".join(
                f"{e['node']}:{e['interface']}" + (f" {e['ipv4']}" if e["ipv4"] else "")
                for e in link["endpoints"]
            )
            lines.append(
                f"  link {link['name']} ({link['bridge']}, {link['subnet'] or '-'}): {ends}"
            )
        lines.append("")
    return "\n".join(lines)
