"""`labctl test --matrix`: a topology's cases for every gateway x client implementation.

Each combination sets `implementation:` on every concentrator (the gateway) and every
vpn-client of the topology, then validates the result like any topology file. A
combination whose file does not validate -- a setting that implementation cannot express,
say IPsec over TCP on strongSwan -- is "not applicable", with the validate errors as the
reason: reported and counted apart, never run, never failed. Case names carry the
combination (`expect [gw=strongswan client=vpnc]`), so JUnit tells them apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import yaml

from ..kinds.registry import spec_of
from ..topology import Lab, TopologyError, load_lab_text
from ..topology.files import MAX_TOPOLOGY_BYTES, decode_text, read_limited

GATEWAY_KIND = "concentrator"
CLIENT_KIND = "vpn-client"


@dataclass(frozen=True)
class Variant:
    """One combination of a topology: its lab, or why it is not applicable."""

    label: str  # "gw=ours client=vpnc"
    lab: Lab | None
    not_applicable: str | None = None


def implementations(kind: str) -> tuple[str, ...]:
    return tuple(i.name for i in spec_of(kind).implementations)


def _nodes(data: Any) -> dict[str, Any]:
    """The file's nodes, or none when it is not shaped like a topology (the lab loader,
    which every variant goes through, then says what is wrong)."""
    topology = data.get("topology") if isinstance(data, dict) else None
    nodes = topology.get("nodes") if isinstance(topology, dict) else None
    return nodes if isinstance(nodes, dict) else {}


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _kind_of(node: dict[str, Any], topology: dict[str, Any]) -> Any:
    """A node's kind as inheritance gives it (topology/merge.py): its own `kind:`, else
    its group's, else the defaults'."""
    defaults = _mapping(topology.get("defaults"))
    groups = _mapping(topology.get("groups"))
    group = groups.get(str(node.get("group", defaults.get("group"))))
    group_kind = group.get("kind") if isinstance(group, dict) else None
    return node.get("kind", group_kind if group_kind is not None else defaults.get("kind"))


def _kinds_present(data: Any) -> set[str]:
    return {
        str(_kind_of(node, data["topology"]))
        for node in _nodes(data).values()
        if isinstance(node, dict)
    }


def _with_implementations(data: dict[str, Any], chosen: dict[str, str]) -> dict[str, Any]:
    copy = yaml.safe_load(yaml.safe_dump(data))  # a deep copy of plain YAML data
    topology = copy["topology"]
    for name, node in topology["nodes"].items():
        if node is None:  # a node that inherits everything
            node = topology["nodes"][name] = {}
        if isinstance(node, dict) and _kind_of(node, topology) in chosen:
            node["implementation"] = chosen[_kind_of(node, topology)]
    return copy


def case_names(path: Path, only: list[str] | None = None) -> list[str]:
    """The file's cases by name ("expect", then its scenarios) as written, without
    validating it: a base file that is invalid as written may have valid combinations."""
    data = yaml.safe_load(decode_text(read_limited(path, MAX_TOPOLOGY_BYTES)))
    if not isinstance(data, dict):
        return []
    scenarios = _mapping(data.get("scenarios"))
    names = [str(name) for name in scenarios if not only or name in only]
    return (["expect"] if data.get("expect") else []) + names


def variants(path: Path) -> list[Variant]:
    """Every gateway x client combination of the file (only the kinds it has)."""
    text = decode_text(read_limited(path, MAX_TOPOLOGY_BYTES))
    data = yaml.safe_load(text)
    present = _kinds_present(data)
    axes = [(kind, short) for kind, short in ((GATEWAY_KIND, "gw"), (CLIENT_KIND, "client"))
            if kind in present]  # fmt: skip
    if not axes:
        return [Variant("", load_lab_text(text, path))]
    found = []
    for combination in product(*(implementations(kind) for kind, _ in axes)):
        chosen = {kind: name for (kind, _), name in zip(axes, combination, strict=True)}
        label = " ".join(f"{short}={chosen[kind]}" for kind, short in axes)
        variant_text = yaml.safe_dump(_with_implementations(data, chosen), sort_keys=False)
        try:
            found.append(Variant(label, load_lab_text(variant_text, path)))
        except TopologyError as exc:
            reasons = "; ".join(f"{issue.field}: {issue.message}" for issue in exc.issues)
            found.append(Variant(label, None, reasons or str(exc)))
    return found
